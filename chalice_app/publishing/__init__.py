"""The model job's side: read and validate a predictions file, publish it to S3, sample data."""
