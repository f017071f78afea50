"""What a release folder holds and how it is checked before a deploy (deploy/release.py builds it).

A release is `deployment.zip`, one `sam-<stage>.json` per stage and `release.json` (the commit, the code's
content hash, the stages, a hash of `.chalice/` as it was). `load` gives one stage's package, refusing a
missing stage, a zip that is not the recorded code, or other stage settings than `.chalice/` holds now.
deploy/app_stack.py (`--release DIR`) reads releases through this module; deploy/release.py writes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass

from deploy.stack import PROJECT_DIR, StackError

MANIFEST = "release.json"
ZIP = "deployment.zip"


def content_hash(zip_path: str) -> str:
    """sha256 over the zip's member names and bytes, in name order: the same code gives the same hash on any
    machine, whatever the zip's timestamps or member order."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(zip_path) as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            data = archive.read(info)
            for part in (info.filename.encode("utf-8"), len(data).to_bytes(8, "big"), data):
                digest.update(part)
    return digest.hexdigest()


class ReleaseError(StackError):
    """A release cannot be built or deployed; the message says why and what to do."""


def template_name(stage: str) -> str:
    return f"sam-{stage}.json"


def settings_hash(project_dir: str = PROJECT_DIR) -> str:
    """sha256 over .chalice/*.json (names and bytes): the stage settings a package was made from."""
    folder = os.path.join(project_dir, ".chalice")
    digest = hashlib.sha256()
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".json")):
        with open(os.path.join(folder, name), "rb") as fh:
            data = fh.read()
        for part in (name.encode(), len(data).to_bytes(8, "big"), data):
            digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True)
class Release:
    template: dict
    zip_path: str
    manifest: dict


def load(folder: str, stage: str, *, project_dir: str = PROJECT_DIR) -> Release:
    """A release's package of `stage`, checked: the stage is in it, its code is what was recorded, and it was
    built from the stage settings `.chalice/` holds now."""
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        raise ReleaseError(f"{path} not found: build the release with `make release` (python -m deploy.release "
                           f"--out {folder})") from None
    except ValueError as exc:
        raise ReleaseError(f"{path} is not JSON ({exc}): build the release again") from None
    if stage not in manifest.get("stages", []):
        raise ReleaseError(f"the release in {folder} has no stage {stage} (it has {manifest.get('stages')}): "
                           f"build it with `python -m deploy.release --out {folder} --stages ... {stage}`")
    zip_path = os.path.join(folder, ZIP)
    if not os.path.isfile(zip_path) or content_hash(zip_path) != manifest.get("content_sha256"):
        raise ReleaseError(f"{zip_path} is missing or not the code the release recorded "
                           f"({str(manifest.get('content_sha256'))[:12]}): a damaged download; build it again")
    if manifest.get("settings_sha256") != settings_hash(project_dir):
        raise ReleaseError(f"the release in {folder} was built from other stage settings than .chalice/ holds now "
                           "(a stack step rewrote the site function's settings, or they were edited): commit "
                           ".chalice/ and build the release again")
    with open(os.path.join(folder, template_name(stage)), encoding="utf-8") as fh:
        template = json.load(fh)
    return Release(template, zip_path, manifest)
