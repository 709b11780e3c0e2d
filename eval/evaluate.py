"""Evaluate a run directory: ``python eval/evaluate.py run=<run dir> probes=[linear,rotation]``.

A thin script over ``sslequi-eval`` (sslequi/cli/evaluate.py); the same Hydra overrides apply.
"""

import sslequi.threads  # noqa: F401  (OpenMP defaults, before torch loads)
from sslequi.cli.evaluate import main

if __name__ == "__main__":
    main()
