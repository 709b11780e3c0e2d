"""Pretraining: the trainer, checkpoints, run directories and the ``pretrain`` entry point.

``sslequi.train.run.pretrain(cfg) -> run directory`` is what the CLI and launchers call;
``sslequi.train.checkpoint.load_method(run_dir)`` is what evaluation reads.
"""
