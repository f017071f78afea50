"""The sync moved to chalice_app/website/sync.py (the rebuild function uses it too); kept for old imports."""

from chalice_app.website.sync import SyncPlan, apply_sync, local_files, plan_sync, remote_files

__all__ = ["SyncPlan", "apply_sync", "local_files", "plan_sync", "remote_files"]
