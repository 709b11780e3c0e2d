"""The one augmentation stack: batched ops on the device that record their parameters.

- ``ops``: batched kernels and ops (sample a typed record per sample, apply it);
- ``params``: the typed records and ``ViewParams`` (one per view);
- ``config``: the ``augment`` config group schema (per-view pipelines, rotated view,
  chunk sharing) and ``load_augment_config``;
- ``pipeline``: ``build_pipeline`` validates a recipe against a ``MethodSpec`` and
  ``DatasetInfo`` and returns the views' pipelines (``sample`` / ``apply``, replayable);
- ``builder``: ``make_batch_builder``, RawBatch → Batch (views, params, rotated views,
  actions).
"""
