"""railpulse_archiver."""
