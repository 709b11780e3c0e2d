"""sslequi.cli."""
