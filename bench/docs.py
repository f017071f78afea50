"""`make docs`: copy bench/results/latest.md into docs/performance.md between its markers.

The figures are never retyped: the block between `<!-- bench:begin -->` and `<!-- bench:end -->`
is the results file, byte for byte, and tests/test_docs.py fails while it is not.

    python -m bench.docs            # rewrite the block
    python -m bench.docs --check    # exit 1 when the block differs from the results file
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
RESULTS = PROJECT_DIR / "bench" / "results" / "latest.md"
DOC = PROJECT_DIR / "docs" / "performance.md"
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"


class MarkerError(ValueError):
    """The document does not hold exactly one well-formed block."""


def block_of(doc_text: str) -> str:
    """The text between the markers (without the newlines that follow BEGIN and precede END)."""
    if doc_text.count(BEGIN) != 1 or doc_text.count(END) != 1:
        raise MarkerError(f"expected exactly one {BEGIN} and one {END}")
    _, rest = doc_text.split(BEGIN)
    inner, _ = rest.split(END)
    return inner.removeprefix("\n").removesuffix("\n")


def results_text(results_path: Path = RESULTS) -> str:
    return results_path.read_text(encoding="utf-8").rstrip("\n")


def with_block(doc_text: str, results: str) -> str:
    """`doc_text` with its block replaced by `results`."""
    block_of(doc_text)  # validates the markers
    head, rest = doc_text.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{results}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.docs",
                                description="Copy bench/results/latest.md into docs/performance.md's marked block.")
    p.add_argument("--check", action="store_true", help="exit 1 when the block differs from the results file")
    args = p.parse_args(argv)
    doc_text = DOC.read_text(encoding="utf-8")
    try:
        updated = with_block(doc_text, results_text())
    except MarkerError as exc:
        print(f"{DOC.relative_to(PROJECT_DIR)}: {exc}", file=sys.stderr)
        return 1
    if updated == doc_text:
        print(f"{DOC.relative_to(PROJECT_DIR)} is up to date")
        return 0
    if args.check:
        print(f"{DOC.relative_to(PROJECT_DIR)} is stale: run `make docs`", file=sys.stderr)
        return 1
    DOC.write_text(updated, encoding="utf-8")
    print(f"wrote {DOC.relative_to(PROJECT_DIR)} from {RESULTS.relative_to(PROJECT_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
