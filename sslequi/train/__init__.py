"""sslequi.train."""
