"""railpulse_notifier."""
