"""Chalice's entry point: the app itself lives in chalice_app.api.routes."""

from chalice_app.api.routes import app

__all__ = ["app"]
