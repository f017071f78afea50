"""The HTTP API: Chalice routes, responses, cursors, per-container state and warm-up answers."""
