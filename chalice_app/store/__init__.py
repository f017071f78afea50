"""Batches in S3 and in memory: where the bytes are read, the parsed batch, the per-container cache."""
