"""sslequi: a research harness for self-supervised equivariant representation learning."""

__version__ = "0.1.0"
