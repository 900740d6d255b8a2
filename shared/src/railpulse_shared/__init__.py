"""railpulse_shared."""
