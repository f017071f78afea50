"""Read a stage's settings from .chalice/config.json, for the command-line tools.

The tools (publish, sample, build_site, warm) take `--stage S` and must use exactly the bucket
and prefix the deployed API of that stage reads, so they read the same file Chalice does.
"""

from __future__ import annotations

import json
import os

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_PATH = os.path.join(PROJECT_DIR, ".chalice", "config.json")


class StageError(ValueError):
    """The stage is unknown or its configuration lacks what the tool needs."""


def load_config(path: str = CONFIG_PATH) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise StageError(f"{path} not found: run this from the project folder") from None


def stage_environment(stage: str, path: str = CONFIG_PATH) -> dict[str, str]:
    """The environment variables Chalice gives the API function of `stage` (top level + stage)."""
    config = load_config(path)
    stages = config.get("stages", {})
    if stage not in stages:
        raise StageError(f"unknown stage {stage!r}; stages in {path}: {', '.join(sorted(stages))}")
    return {**config.get("environment_variables", {}), **stages[stage].get("environment_variables", {})}


def stage_section(stage: str, key: str, path: str = CONFIG_PATH) -> object:
    """A stage's own key in .chalice/config.json beyond Chalice's (e.g. `publish_gate`), or None.
    Chalice ignores keys it does not know, so a tool's settings can live beside the stage's."""
    config = load_config(path)
    stages = config.get("stages", {})
    if stage not in stages:
        raise StageError(f"unknown stage {stage!r}; stages in {path}: {', '.join(sorted(stages))}")
    return stages[stage].get(key)
