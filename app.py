"""Chalice's entry point: the app itself lives in chalice_app.routes."""

from chalice_app.routes import app

__all__ = ["app"]
