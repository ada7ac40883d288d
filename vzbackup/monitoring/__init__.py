"""Telling people: run summaries and alerts by email and webhook, and Prometheus metrics
in node_exporter's textfile format."""
