"""sslequi.models."""
