"""What changed since the previous batch: per row the change of its value (absolute and %), new
and dropped ids, and a one-line summary. Pure functions of two Batches, computed at build time."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from chalice_app.store.batch import Batch
from chalice_app.website import numbers
from chalice_app.website.numbers import Precision, finite_number
from chalice_app.website.view import Column

DROPPED_SHOWN = 20  # dropped ids listed by name on the page; the rest are counted


def value_column(columns: list[Column]) -> Column | None:
    """The column whose change is shown: `value` when the batch has it, else its first numeric one."""
    numeric = [c for c in columns if c.numeric and c.kind != "change"]
    return next((c for c in numeric if c.name == "value"), numeric[0] if numeric else None)


def change_of(current: object, previous: object) -> tuple[float | None, float | None]:
    """(current - previous, the change in % of |previous| rounded to 0.1) or Nones when either is
    not a finite number; the percentage is None when previous is 0."""
    now, before = finite_number(current), finite_number(previous)
    if now is None or before is None:
        return None, None
    delta = now - before
    if not math.isfinite(delta):
        return None, None
    pct = round(delta / abs(before) * 100, 1) if before != 0 else None
    return delta, (0.0 if pct == 0 else pct)  # no "-0.0 %"


@dataclass
class Changes:
    """The change of every row of `batch` against `previous_date`'s batch, in row order."""

    previous_date: str
    column: Column
    deltas: list[float | str | None]  # a number, "new", or None (no value on either side)
    pcts: list[float | None]
    up: int = 0
    down: int = 0
    same: int = 0
    new: int = 0
    dropped: list[str] = field(default_factory=list)

    def of(self, n: int) -> tuple[float | str | None, float | None]:
        return self.deltas[n], self.pcts[n]

    def text(self, n: int) -> str:
        return change_text(self.deltas[n], self.pcts[n], self.column.precision)

    def summary(self) -> str:
        parts = [f"{self.up:,} up", f"{self.down:,} down"]
        if self.same:
            parts.append(f"{self.same:,} unchanged")
        parts += [f"{self.new:,} new", f"{len(self.dropped):,} dropped"]
        return ", ".join(parts) + f" since {self.previous_date}"


def change_text(delta: float | str | None, pct: float | None, precision: Precision | int | None) -> str:
    """'+12.4 (+3.1%)', '-1,250 (-0.2%)' with a plain minus sign, '0.0 (0.0%)', 'new' or ''; the
    delta in its column's precision (numbers.format_number, an int: that many decimals), the
    percentage to 0.1. The script prints the same from the embedded delta and pct."""
    if isinstance(delta, str):
        return delta
    if delta is None:
        return ""
    if not isinstance(precision, Precision):
        precision = Precision(precision)
    shown = numbers.format_number(delta, precision)
    sign = "+" if delta > 0 and shown.strip("0.,") else ""
    out = sign + shown
    if pct is not None:
        out += f" ({numbers.percent(pct)})"
    return out


def changes_of(batch: Batch, previous: Batch, columns: list[Column]) -> Changes | None:
    """The changes of `batch` against `previous`, or None when the batch has no numeric value."""
    column = value_column(columns)
    if column is None:
        return None
    before = {item["id"]: item.get(column.name) for item in previous.items}
    result = Changes(previous.date, column, [], [])
    for item in batch.items:
        if item["id"] not in before:
            result.deltas.append("new")
            result.pcts.append(None)
            result.new += 1
            continue
        delta, pct = change_of(item.get(column.name), before[item["id"]])
        result.deltas.append(delta)
        result.pcts.append(pct)
        if delta is not None:
            if delta > 0:
                result.up += 1
            elif delta < 0:
                result.down += 1
            else:
                result.same += 1
    current = set(batch.index)
    result.dropped = [item["id"] for item in previous.items if item["id"] not in current]
    return result


def change_column(changes: Changes) -> Column:
    return Column("change", "Change", True, changes.column.decimals, kind="change", digits=changes.column.digits)


def previous_date(dates: list[str], date: str) -> str | None:
    """The newest date before `date` in `dates` (any order), or None."""
    older = [d for d in dates if d < date]
    return max(older) if older else None


def with_changes(batch: Batch, previous: Batch | None, columns: list[Column]) -> tuple[list[Column], Changes | None]:
    """The batch's columns plus the change column, and the changes, when there is a previous batch."""
    changes = changes_of(batch, previous, columns) if previous is not None else None
    return ([*columns, change_column(changes)] if changes is not None else columns), changes


def changes_context(changes: Changes | None) -> dict | None:
    """What the page header says about the changes."""
    if changes is None:
        return None
    return {"summary": changes.summary(), "previous": changes.previous_date, "column": changes.column.label,
            "dropped": changes.dropped[:DROPPED_SHOWN], "dropped_more": max(0, len(changes.dropped) - DROPPED_SHOWN)}
