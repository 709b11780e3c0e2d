"""sslequi.launcher."""
