"""railpulse_notifier: SQS `alerts` in, alarm lifecycle in DynamoDB, transitions on Kinesis
`events`, open alerts in each train's device shadow."""
