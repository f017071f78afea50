"""`make docs`: copy result files into the docs between their markers.

The figures are never retyped: each block is its results file, byte for byte, and
tests/test_docs.py fails while one is not.

- bench/results/latest.md (`make bench`) between `<!-- bench:begin -->` and `<!-- bench:end -->`
  in docs/performance.md;
- bench/results/lighthouse.md (`make lighthouse`) between `<!-- lighthouse:begin -->` and
  `<!-- lighthouse:end -->` in docs/website.md.

    python -m bench.docs            # rewrite the blocks
    python -m bench.docs --check    # exit 1 when a block differs from its results file
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
RESULTS = PROJECT_DIR / "bench" / "results" / "latest.md"
DOC = PROJECT_DIR / "docs" / "performance.md"
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"


@dataclass(frozen=True)
class Block:
    doc: Path
    results: Path
    begin: str
    end: str


BENCH = Block(DOC, RESULTS, BEGIN, END)
LIGHTHOUSE = Block(PROJECT_DIR / "docs" / "website.md", PROJECT_DIR / "bench" / "results" / "lighthouse.md",
                   "<!-- lighthouse:begin -->", "<!-- lighthouse:end -->")
BLOCKS = (BENCH, LIGHTHOUSE)


class MarkerError(ValueError):
    """The document does not hold exactly one well-formed block."""


def block_of(doc_text: str, begin: str = BEGIN, end: str = END) -> str:
    """The text between the markers (without the newlines that follow `begin` and precede `end`)."""
    if doc_text.count(begin) != 1 or doc_text.count(end) != 1 or doc_text.index(begin) > doc_text.index(end):
        raise MarkerError(f"expected exactly one {begin} and one {end}, in that order")
    _, rest = doc_text.split(begin)
    inner, _ = rest.split(end)
    return inner.removeprefix("\n").removesuffix("\n")


def results_text(results_path: Path = RESULTS) -> str:
    return results_path.read_text(encoding="utf-8").rstrip("\n")


def with_block(doc_text: str, results: str, begin: str = BEGIN, end: str = END) -> str:
    """`doc_text` with its block replaced by `results`."""
    block_of(doc_text, begin, end)  # validates the markers
    head, rest = doc_text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{results}\n{end}{tail}"


def sync(block: Block, check: bool) -> bool:
    """Rewrite (or, with `check`, compare) one block; False when it is stale or malformed."""
    name = block.doc.relative_to(PROJECT_DIR)
    doc_text = block.doc.read_text(encoding="utf-8")
    try:
        updated = with_block(doc_text, results_text(block.results), block.begin, block.end)
    except MarkerError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return False
    if updated == doc_text:
        print(f"{name} is up to date with {block.results.relative_to(PROJECT_DIR)}")
        return True
    if check:
        print(f"{name} is stale: run `make docs`", file=sys.stderr)
        return False
    block.doc.write_text(updated, encoding="utf-8")
    print(f"wrote {name} from {block.results.relative_to(PROJECT_DIR)}")
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.docs",
                                description="Copy bench/results/latest.md into docs/performance.md and "
                                            "bench/results/lighthouse.md into docs/website.md, between their markers.")
    p.add_argument("--check", action="store_true", help="exit 1 when a block differs from its results file")
    args = p.parse_args(argv)
    results = [sync(block, args.check) for block in BLOCKS]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
