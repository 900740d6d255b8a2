"""`cdk synth` / `cdk deploy` entry point (see cdk.json); the app lives in railpulse_deploy.app."""

from railpulse_deploy.app import main

main()
