"""Deploying the site of a stage: a private S3 bucket behind CloudFront, /api/* to the stage's API.

Not part of the Lambda: Chalice packages only app.py and vendor/, so nothing here reaches the zip.
"""
