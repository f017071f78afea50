"""Settings of a stage: environment variables, Parameter Store, and .chalice/config.json for the commands."""
