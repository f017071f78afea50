"""Keeping the API warm: the scheduled warmer function and the prewarm command run after a deploy."""
