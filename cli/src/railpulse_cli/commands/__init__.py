"""Sub-commands of `railpulse`: one module each, with `register(subparsers)`."""
