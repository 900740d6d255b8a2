"""railpulse_devstack."""
