"""sslequi.evaluation."""
