"""railpulse_detector."""
