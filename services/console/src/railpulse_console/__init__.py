"""railpulse console: a read-only, real-time web view of the fleet."""
