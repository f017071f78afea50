"""Helpers shared by the site tests: sample batch folders, and reading pages as a user sees them."""

from __future__ import annotations

import os
import re
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
        if self._cell is not None:
            self._cell.append(data)
        if self._link is not None:
            self._link[1].append(data)
        if self._h1:
            self.h1 += data

    def link(self, text: str) -> str:
        """The href of the first link whose text is `text`."""
        return next(href for href, label in self.links if label == text)


BLOCKS = {"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "td", "th", "tr", "caption", "table", "thead",
          "tbody", "dt", "dd", "dl", "figcaption", "figure", "summary", "details", "section", "nav", "header",
          "footer", "main", "body", "title", "label", "button", "text", "svg", "g", "desc"}
CODE = {"pre", "code"}
HIDDEN = {"script", "style"}  # not text a reader sees


class VisibleText(HTMLParser):
    """The text of each block of a page as a reader sees it: runs of whitespace are one space, inline
    tags (<strong>, <span class="nobr">, <a>) add none. `code_as` stands for each <code>/<pre> (None:
    its text), so "the <code>x</code> field" stays one sentence when only the prose matters."""

    def __init__(self, html: str, code_as: str | None = None) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._hidden = 0
        self._code_as = code_as
        self.feed(html)
        self.close()
        self._flush()

    def _flush(self) -> None:
        text = re.sub(r"[ \t\r\n\f]+", " ", "".join(self._current)).strip(" ")
        if text:
            self.blocks.append(text)
        self._current = []

    def _hides(self, tag: str) -> bool:
        return tag in HIDDEN or (tag in CODE and self._code_as is not None)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if self._hides(tag):
            self._hidden += 1
            if tag in CODE:
                self._current.append(self._code_as or "")
        if tag in BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if self._hides(tag):
            self._hidden -= 1
        if tag in BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._current.append(data)


def visible_text(html: str) -> str:
    """A page's words as a reader sees them, its blocks joined by a space."""
    return " ".join(VisibleText(html).blocks)
