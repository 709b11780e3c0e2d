"""Frozen-feature evaluation on one protocol (shared/reference/evaluation.md).

* ``features``  — every view of every object embedded once (eval-mode BN), cached on disk
  under a key of checkpoint, dataset, split, resolution and views.
* ``probes``    — heads and their training loop over seeded per-epoch view draws.
* ``live``      — paper-protocol mode: re-embed the drawn views every epoch (train-mode BN).
* ``predictor`` — MRR, H@k and PRE of a method's learned predictor.
* ``augparams`` — augmentation-parameter R² through the augmentation pipeline.
* ``metrics``   — both R² definitions with their floors, kNN, ranks, PRE.
* ``protocol``  — typed probe settings and the ``Protocol`` stored with every number.
* ``results``   — results.json merging and ``compare``, the harness's comparison table.
* ``runner``    — ``evaluate_method`` / ``evaluate_run`` (behind ``sslequi-eval``).
"""
