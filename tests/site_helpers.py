"""Helpers shared by the site tests: sample batch folders, and reading pages as a user sees them."""

from __future__ import annotations

import os
from html.parser import HTMLParser

from chalice_app.publishing.sample import dates_ending, make_batch, write_folder
from chalice_app.store.cache import PredictionStore
from chalice_app.store.sources import DirSource
from chalice_app.website.build import build

PREFIX = "predictions/"
END_DATE = "2026-11-20"
HOSTILE_LABEL = '</script><script>alert("x")</script>'


def sample_docs(days: int, count: int, end: str = END_DATE) -> list[dict]:
    """Sample batches; in the newest, row 2 has a hostile label and the largest value of all."""
    docs = [make_batch(date, count) for date in dates_ending(end, days)]
    docs[-1]["predictions"][1].update(label=HOSTILE_LABEL, value=99999.0, lower=99000.0, upper=100500.0)
    return docs


def write_source(root: str, docs: list[dict]) -> str:
    write_folder(root, PREFIX, docs)
    return root


def folder_store(root: str) -> PredictionStore:
    return PredictionStore(DirSource(root), PREFIX)


def build_folder(src: str, out: str, days: int) -> None:
    build(folder_store(src), out, days)


def read(out: str, path: str) -> str:
    with open(os.path.join(out, *path.split("/")), encoding="utf-8") as fh:
        return fh.read()


class Page(HTMLParser):
    """What a reader gets from one HTML page: the table's body rows, links, headings, scripts."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.headers: list[str] = []
        self.links: list[tuple[str, str]] = []  # (href, text)
        self.scripts: list[dict[str, str | None]] = []
        self.h1 = ""
        self._text: list[str] = []
        self._in: list[str] = []
        self._cell: list[str] | None = None
        self._link: tuple[str, list[str]] | None = None
        self._h1 = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in.append(tag)
        if tag == "tr" and "tbody" in self._in:
            self.rows.append([])
        if tag in ("td", "th") and ("tbody" in self._in or "thead" in self._in):
            self._cell = []
        if tag == "a":
            self._link = (dict(attrs).get("href") or "", [])
        if tag == "script":
            self.scripts.append(dict(attrs))
        if tag == "h1":
            self._h1 = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            (self.rows[-1] if "tbody" in self._in else self.headers).append(text)
            self._cell = None
        if tag == "a" and self._link is not None:
            self.links.append((self._link[0], "".join(self._link[1]).strip()))
            self._link = None
        if tag == "h1":
            self._h1 = False
        while self._in:
            if self._in.pop() == tag:
                break

    def handle_data(self, data: str) -> None:
        if not {"script", "style", "head"} & set(self._in):
            self._text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._link is not None:
            self._link[1].append(data)
        if self._h1:
            self.h1 += data

    @property
    def text(self) -> str:
        """The page's words as a reader sees them: tags gone, whitespace collapsed."""
        return " ".join("".join(self._text).split())

    def link(self, text: str) -> str:
        """The href of the first link whose text is `text`."""
        return next(href for href, label in self.links if label == text)
