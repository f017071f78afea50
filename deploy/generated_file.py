"""A file the repository keeps as a generator's output (deploy/stack.json, deployer-policy.json, oidc-roles.json):
write it, or with --check say whether it is stale. Tests run the check, so a generator change without its
output fails."""

from __future__ import annotations

import os
import sys


def write_or_check(path: str, text: str, module: str, *, check: bool) -> int:
    """0 written (or fresh with check); 1 stale, with the command that regenerates it."""
    name = os.path.relpath(path, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if check:
        try:
            with open(path, encoding="utf-8") as fh:
                current = fh.read()
        except FileNotFoundError:
            current = ""
        if current != text:
            print(f"{name} is stale: run `python -m {module}`", file=sys.stderr)
            return 1
        return 0
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"wrote {name}")
    return 0
