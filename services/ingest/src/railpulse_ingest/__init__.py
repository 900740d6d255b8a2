"""railpulse_ingest."""
