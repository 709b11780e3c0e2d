"""Pretrain one run (or a --multirun sweep): a thin script over ``sslequi-pretrain``.

python launch/pretrain.py method=vicreg dataset=synthetic train.steps=100
"""

import sslequi.threads  # noqa: F401  (OpenMP defaults, before torch loads)
from sslequi.cli.pretrain import main

if __name__ == "__main__":
    main()
