"""railpulse_edge."""
