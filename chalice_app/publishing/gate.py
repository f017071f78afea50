"""The publish gate: before the pointer moves, a batch is compared with the previous one, and refused
(EXIT_GATE) when it does not look like a day of the same model, unless --force says why.

The contract checks a batch's shape; the gate checks whether it makes sense next to yesterday's: half
the rows missing, a column turned null, values ten times too large, a renamed field. Every batch the
publish command stores gets a report beside it, `{prefix}{date}/report.json` (contract.report_key): the
verdict, every check with its numbers, and the batch's profile, which is what the next day's gate
compares with (so it never reads the previous batch itself; only when that batch has no report, one
published before the gate, is it read once and profiled).

Rules (thresholds per stage, `publish_gate` in the stage of .chalice/config.json; GateConfig):
- rows: more than `max_row_drop` (0.2) fewer rows than the previous batch, or than the median of the
  last HISTORY (7) batches' counts (with 3 or more): a slow slide passes day by day, not over a week;
- ids: more than `max_ids_dropped` (0.2) of the previous ids gone, or `max_ids_added` (0.5) of the ids
  new. Measured on the ids whose CRC-32 falls in a fixed slice (all of them up to ~16k rows): the same
  id falls in the same slice in every batch, so both sides are the same sub-population, exactly;
- fields: a field removed, a field added, a field whose type (string, number, boolean) changed, or
  whose share of nulls rose by more than `max_null_rate_rise` (0.1, i.e. 10 points);
- numbers: the population stability index of each numeric field against the previous batch above
  `max_psi` (0.25). Binning: the previous batch's deciles (up to 10 bins, fewer when it has fewer
  distinct values), each side's share of values per bin, empty bins counted as 0.0001; on a strided
  sample of at most 100,000 values a side, and only with 100 values or more a side (PSI_MIN_VALUES:
  below that the index is noise). And a range that grew past the previous one by more than
  `max_range_growth` (1.0) times its width, on either side;
- the team's rules (`fields` in `publish_gate`): per field `min`, `max`, `required` (a value in every row);
- a model name or version change is stated, never refused.
"""

from __future__ import annotations

import math
import zlib
from bisect import bisect_right
from dataclasses import dataclass, field, fields
from functools import partial
from itertools import chain, compress, pairwise, repeat
from operator import and_, is_not, itemgetter, not_
from types import NoneType
from typing import Any

EXIT_GATE = 3

PSI_SAMPLE = 100_000
PSI_FLOOR = 1e-4
# Below this many values a side, deciles hold a handful of values each and the index is noise
# (two days of the same 20-row sample score 1.7): the distribution check is skipped, and said so.
PSI_MIN_VALUES = 100
BINS = 10
ID_SAMPLE_TARGET = 16_384
HISTORY = 7  # earlier batches whose row counts the gate also compares with (their median)
HISTORY_MIN = 3
FIELD_RULE_KEYS = frozenset({"min", "max", "required"})


@dataclass(frozen=True)
class GateConfig:
    max_row_drop: float = 0.2
    max_ids_dropped: float = 0.2
    max_ids_added: float = 0.5
    max_null_rate_rise: float = 0.1
    max_psi: float = 0.25
    max_range_growth: float = 1.0
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, raw: object, where: str = "publish_gate") -> GateConfig:
        """The gate's settings from a stage's `publish_gate` object; a wrong key or value is a
        ValueError naming it (a typo must not switch a rule off silently)."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be an object, got {type(raw).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if name == "fields":
                values[name] = _field_rules(value, f"{where}.fields")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
                raise ValueError(f"{where}.{name} must be a number from 0 to 100 (a share: 0.2 is 20%), got {value!r}")
            values[name] = float(value)
        return cls(**values)


def _field_rules(raw: object, where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must map field names to rules, got {type(raw).__name__}")
    for name, rules in raw.items():
        if not isinstance(rules, dict) or not set(rules) <= FIELD_RULE_KEYS:
            keys = ", ".join(sorted(FIELD_RULE_KEYS))
            raise ValueError(f"{where}.{name} must be an object with {keys}, got {rules!r}")
        for bound in ("min", "max"):
            value = rules.get(bound)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"{where}.{name}.{bound} must be a number, got {value!r}")
        if not isinstance(rules.get("required", False), bool):
            raise ValueError(f"{where}.{name}.required must be true or false")
    return raw


# -- the profile of a batch -------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return value.__class__ in (int, float)


_NOT_NONE = partial(is_not, None)
_TYPE_NAMES = {str: "string", int: "number", float: "number", bool: "boolean"}


def _id_hashes(ids: list[str]) -> list[int]:
    return list(map(zlib.crc32, map(str.encode, ids)))


def profile(rows: list[dict], model: object = None) -> tuple[dict, dict[str, list[float]]]:
    """(what the next gate compares with: counts, each field's types, nulls and numeric shape, and a
    fixed slice of the ids; each numeric field's sorted sample, for this gate only). One pass per
    field over the rows, in C where it can be."""
    count = len(rows)
    names = dict.fromkeys(chain.from_iterable(rows))  # every field, in the order first seen
    out_fields: dict[str, dict] = {}
    samples: dict[str, list[float]] = {}
    stride = max(1, count // PSI_SAMPLE)
    for name in names:
        if name == "id":
            continue
        column = list(map(dict.get, rows, repeat(name)))
        kinds = set(map(type, column))
        # Counting compares every value with None: only worth it when there is one.
        nulls = column.count(None) if NoneType in kinds else 0
        types = sorted({_TYPE_NAMES.get(kind, "other") for kind in kinds if kind is not NoneType})
        info: dict[str, Any] = {"nulls": nulls, "types": types}
        if types == ["number"]:
            numbers = column if not nulls else list(filter(_NOT_NONE, column))
            sample = samples[name] = sorted(numbers[::stride])
            edges = _edges(sample)
            info["numeric"] = {"min": min(numbers), "max": max(numbers), "values": len(sample), "edges": edges,
                               "shares": _shares(sample, edges)}
        out_fields[name] = info
    ids = list(map(itemgetter("id"), rows))
    bits = max(0, math.ceil(math.log2(max(1, count) / ID_SAMPLE_TARGET)))
    sampled = sorted(_id_slice(ids, bits))
    return ({"count": count, "model": model, "fields": out_fields, "ids": {"mask_bits": bits, "sample": sampled}},
            samples)


def _id_slice(ids: list[str], bits: int) -> list[str]:
    """The ids whose CRC-32 has its low `bits` bits clear (all of them when `bits` is 0): the same id
    is in the slice in every batch."""
    if not bits:
        return list(ids)
    mask = (1 << bits) - 1
    return list(compress(ids, map(not_, map(and_, _id_hashes(ids), repeat(mask)))))


def _edges(sorted_sample: list[float]) -> list[float]:
    """The inner edges of up to BINS quantile bins (the deciles), distinct and increasing."""
    if not sorted_sample:
        return []
    n = len(sorted_sample)
    cuts = [sorted_sample[min(n - 1, (n * k) // BINS)] for k in range(1, BINS)]
    return sorted(set(cuts) - {sorted_sample[0]})


def _shares(sorted_sample: list[float], edges: list[float]) -> list[float]:
    """Each bin's share of a sorted sample (bins: up to each edge, inclusive, then past the last)."""
    cuts = [0, *(bisect_right(sorted_sample, edge) for edge in edges), len(sorted_sample)]
    total = len(sorted_sample) or 1
    return [(b - a) / total for a, b in pairwise(cuts)]


# -- the checks ------------------------------------------------------------------------------------


def _check(rule: str, passed: bool, message: str, **numbers: object) -> dict:
    return {"rule": rule, "passed": passed, "message": message, **numbers}


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def compare(new: dict, old: dict | None, config: GateConfig, rows: list[dict],
            samples: dict[str, list[float]], history: list[int] | None = None) -> tuple[list[dict], list[str]]:
    """(checks, notes) of a batch's profile (and its numeric samples) against the previous batch's
    profile (None: the first batch) and the row counts of the batches before (`history`, newest first)."""
    checks: list[dict] = []
    notes: list[str] = []
    checks.extend(_team_rules(rows, config))
    if old is None:
        notes.append("no previous batch: only the stage's own rules apply")
        return checks, notes
    n_new, n_old = new["count"], old["count"]
    drop = (n_old - n_new) / n_old if n_old else 0.0
    checks.append(_check("row_count", drop <= config.max_row_drop,
                         f"{n_new:,} rows, was {n_old:,} ({'-' if drop > 0 else '+'}{_pct(abs(drop))}; "
                         f"at most {_pct(config.max_row_drop)} fewer)", value=round(drop, 4),
                         threshold=config.max_row_drop))
    if history and len(history) >= HISTORY_MIN:
        # A slow slide (5 % fewer rows a day) passes day by day; against the median of the last week it does not.
        median = sorted(history)[len(history) // 2]
        slide = (median - n_new) / median if median else 0.0
        checks.append(_check("row_count_history", slide <= config.max_row_drop,
                             f"{n_new:,} rows, the median of the last {len(history)} batches is {median:,} "
                             f"({'-' if slide > 0 else '+'}{_pct(abs(slide))}; at most {_pct(config.max_row_drop)} "
                             "fewer)", value=round(slide, 4), threshold=config.max_row_drop))
    checks.extend(_id_checks(new["ids"], old["ids"], config))
    checks.extend(_field_checks(new, old, config, samples))
    if new.get("model") != old.get("model"):
        notes.append(f"model changed: {_model_text(old.get('model'))} -> {_model_text(new.get('model'))}")
    return checks, notes


def _model_text(model: object) -> str:
    if isinstance(model, dict):
        return f"{model.get('name')} {model.get('version')}"
    return str(model)


def _id_checks(new: dict, old: dict, config: GateConfig) -> list[dict]:
    bits = max(new["mask_bits"], old["mask_bits"])

    def narrowed(ids: list[str], own_bits: int) -> set[str]:
        return set(ids) if own_bits == bits else set(_id_slice(ids, bits))

    a, b = narrowed(new["sample"], new["mask_bits"]), narrowed(old["sample"], old["mask_bits"])
    dropped = len(b - a) / len(b) if b else 0.0
    added = len(a - b) / len(a) if a else 0.0
    how = "of the ids" if bits == 0 else f"of the ids in a 1/{1 << bits} slice"
    return [
        _check("ids_dropped", dropped <= config.max_ids_dropped,
               f"{_pct(dropped)} {how} of the previous batch are gone (at most {_pct(config.max_ids_dropped)})",
               value=round(dropped, 4), threshold=config.max_ids_dropped),
        _check("ids_added", added <= config.max_ids_added,
               f"{_pct(added)} {how} are new (at most {_pct(config.max_ids_added)})",
               value=round(added, 4), threshold=config.max_ids_added),
    ]


def _field_checks(new: dict, old: dict, config: GateConfig, samples: dict[str, list[float]]) -> list[dict]:
    checks = []
    nf, of = new["fields"], old["fields"]
    removed, added = sorted(set(of) - set(nf)), sorted(set(nf) - set(of))
    checks.append(_check("fields_removed", not removed,
                         f"field(s) removed: {', '.join(removed)}" if removed else "no field removed", fields=removed))
    checks.append(_check("fields_added", not added,
                         f"field(s) added: {', '.join(added)}" if added else "no field added", fields=added))
    for name in sorted(set(nf) & set(of)):
        a, b = nf[name], of[name]
        if a["types"] and b["types"] and a["types"] != b["types"]:
            checks.append(_check("type_changed", False, f"{name}: {'/'.join(b['types'])} -> {'/'.join(a['types'])}",
                                 field=name))
        rate_new = a["nulls"] / new["count"] if new["count"] else 0.0
        rate_old = b["nulls"] / old["count"] if old["count"] else 0.0
        rise = rate_new - rate_old
        checks.append(_check("null_rate", rise <= config.max_null_rate_rise,
                             f"{name}: {_pct(rate_new)} null, was {_pct(rate_old)} "
                             f"(at most {_pct(config.max_null_rate_rise)} more)", field=name,
                             value=round(rise, 4), threshold=config.max_null_rate_rise))
        if "numeric" in a and "numeric" in b:
            checks.extend(_numeric_checks(name, a["numeric"], b["numeric"], samples[name], config))
    return checks


def _numeric_checks(name: str, a: dict, b: dict, sample: list[float], config: GateConfig) -> list[dict]:
    checks = []
    if len(sample) >= PSI_MIN_VALUES and b.get("values", 0) >= PSI_MIN_VALUES:
        expected = b["shares"]
        actual = _shares(sample, b["edges"])  # the new values in the previous batch's bins
        psi = sum((x - e) * math.log(x / e) for x, e in zip(map(_floor, actual), map(_floor, expected), strict=True))
        checks.append(_check("distribution", psi <= config.max_psi,
                             f"{name}: population stability index {psi:.3f} against the previous batch's deciles "
                             f"(at most {config.max_psi:g})", field=name, value=round(psi, 4),
                             threshold=config.max_psi))
    span = b["max"] - b["min"]
    room = config.max_range_growth * (span if span > 0 else max(abs(b["max"]), 1.0))
    low, high = b["min"] - room, b["max"] + room
    in_range = low <= a["min"] and a["max"] <= high
    checks.append(_check("range", in_range, f"{name}: {a['min']:g} to {a['max']:g}, was {b['min']:g} to "
                         f"{b['max']:g} (allowed {low:g} to {high:g})", field=name))
    return checks


def _floor(share: float) -> float:
    return max(share, PSI_FLOOR)


def _team_rules(rows: list[dict], config: GateConfig) -> list[dict]:
    checks = []
    for name, rules in config.fields.items():
        column = list(map(dict.get, rows, repeat(name)))
        if rules.get("required"):
            missing = column.count(None)
            first = column.index(None) + 1 if missing else None
            checks.append(_check("required", not missing,
                                 f"{name}: required, missing in {missing:,} row(s)"
                                 + (f", first row {first:,}" if first else ""), field=name, rows=missing))
        for bound, outside in (("min", lambda v, x: v < x), ("max", lambda v, x: v > x)):
            limit = rules.get(bound)
            if limit is None:
                continue
            bad = [i for i, v in enumerate(column, 1) if _is_number(v) and outside(v, limit)]
            checks.append(_check(bound, not bad,
                                 f"{name}: {len(bad):,} value(s) {'below' if bound == 'min' else 'above'} {limit:g}"
                                 + (f", first row {bad[0]:,}" if bad else ""), field=name, rows=len(bad),
                                 threshold=limit))
    return checks


def failed(checks: list[dict]) -> list[dict]:
    return [c for c in checks if not c["passed"]]


def render(report: dict) -> str:
    """The report as a person reads it on the terminal: the verdict, then each failed check, notes."""
    bad = failed(report["checks"])
    lines = [f"gate: {report['verdict']} ({len(report['checks']) - len(bad)} of {len(report['checks'])} "
             f"checks passed; compared with {report.get('previous') or 'no previous batch'})"]
    lines += [f"  FAILED {c['rule']}: {c['message']}" for c in bad]
    lines += [f"  note: {n}" for n in report.get("notes", ())]
    if report.get("forced"):
        lines.append(f"  forced by {report['forced'].get('by') or 'someone'}: {report['forced'].get('reason')}")
    return "\n".join(lines)
