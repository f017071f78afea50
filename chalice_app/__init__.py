"""Chalice-native prediction serving: the API, its S3 store, the publish command."""

__version__ = "1.0.0"
