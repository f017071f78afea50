"""A site build on disk: render a store's batches into a folder, replaced as a whole.

Also opens the store a stage's site is built from: the stage's bucket, or a folder laid out like it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from chalice_app.store.cache import PredictionStore
from chalice_app.website.render import SITE_DIR, BuildError, Progress, quiet, render_site
from chalice_app.website.view import DEFAULT_DAYS


@dataclass(frozen=True)
class BuildResult:
    out_dir: str
    latest: str
    dates: list[str]
    files: dict[str, int]  # relative path -> bytes
    seconds: float

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())




def write_tree(files: dict[str, bytes], out_dir: str) -> None:
    """Replace out_dir with exactly these files: nothing from an earlier build survives in it."""
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise BuildError(f"{out_dir} is a file, not a folder")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.exists(os.path.join(out_dir, "manifest.json")):
        raise BuildError(f"{out_dir} is not empty and holds no manifest.json: refusing to replace it")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".site-", dir=parent)
    try:
        for path, body in files.items():
            target = os.path.join(staging, *path.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as fh:
                fh.write(body)
        os.chmod(staging, 0o755)  # noqa: S103 - a public website's folder, served read-only
        old = None
        if os.path.exists(out_dir):
            old = staging + ".old"
            os.rename(out_dir, old)
        os.rename(staging, out_dir)
        if old:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def build(store: PredictionStore, out_dir: str, days: int = DEFAULT_DAYS, *, site_dir: str = SITE_DIR,
          progress: Progress = quiet) -> BuildResult:
    """Render the site from `store` into `out_dir` (replaced as a whole)."""
    started = time.monotonic()
    files = render_site(store, days, site_dir=site_dir, progress=progress)
    write_tree(files, out_dir)
    doc = json.loads(files["manifest.json"])
    result = BuildResult(os.path.abspath(out_dir), doc["latest"], doc["dates"],
                         {p: len(b) for p, b in sorted(files.items())}, time.monotonic() - started)
    progress(f"wrote {len(files)} files ({_size(result.total_bytes)}) to {out_dir} in {result.seconds:.1f} s")
    return result


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def open_store(stage: str, source: str) -> PredictionStore:
    """The store the stage's API reads (s3), or the same layout in a local folder, with the
    stage's limits on what one object may cost (MAX_STORED_BYTES, MAX_BATCH_BYTES, MAX_JSON_DEPTH)."""
    from chalice_app.config.settings import SettingsError, load_settings
    from chalice_app.config.stage_file import StageError, stage_environment
    from chalice_app.store.sources import DirSource

    try:
        settings = load_settings(stage_environment(stage))
    except (StageError, SettingsError) as exc:
        raise BuildError(str(exc)) from None
    limits = {"max_stored_bytes": settings.max_stored_bytes, "max_batch_bytes": settings.max_batch_bytes}
    if source != "s3":
        if not os.path.isdir(source):
            raise BuildError(f"--source {source}: not a folder (use 's3' or a folder laid out like the bucket)")
        return PredictionStore(DirSource(source, **limits), settings.prefix, max_batches=2,
                               max_json_depth=settings.max_json_depth)
    if not settings.bucket:
        raise BuildError(f"stage {stage!r} has no PREDICTIONS_BUCKET in .chalice/config.json")
    from chalice_app.aws_clients import make_s3_client

    return s3_store(settings, make_s3_client(settings))


def s3_store(settings, client) -> PredictionStore:  # noqa: ANN001 - Settings, a botocore S3 client
    """A store of the stage's bucket through `client`, with the stage's limits (the site's view of it:
    two batches in memory at a time, enough to render one date after another)."""
    from chalice_app.store.sources import S3Source

    limits = {"max_stored_bytes": settings.max_stored_bytes, "max_batch_bytes": settings.max_batch_bytes}
    return PredictionStore(S3Source(client, settings.bucket, **limits), settings.prefix, max_batches=2,
                           max_json_depth=settings.max_json_depth)
