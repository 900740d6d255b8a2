"""railpulse_cli."""
