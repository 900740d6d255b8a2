"""railpulse_deploy: AWS CDK stacks and the cost model."""
