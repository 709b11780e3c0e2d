"""Hydra launcher plugin ``sslequi`` (selected by ``launcher=submitit_local|slurm``)."""
