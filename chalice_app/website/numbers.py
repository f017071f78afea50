"""How numbers read on the site: one precision per column chosen from the data's scale, thousands
separators, scientific notation only where fixed decimals cannot show a value.

The rule (docs/website.md, "Numbers"):

- A column's scale is the median of its non-zero magnitudes (the lower median: deterministic).
- It prints with enough decimals to give that typical value SIGNIFICANT (4) significant digits:
  scale 0.8731 -> 4 decimals, 12.99 -> 2, 110.7 -> 1, 1,500 or 15,000 -> 0. Never more decimals
  than its most precise value is written with (integers stay integers, 0.5 does not become
  0.5000), never more than MAX_DECIMALS (6).
- A scale below 1e-4 prints every value in scientific notation, `1.23 × 10⁻⁷`, with
  SCIENTIFIC_DIGITS (3) significant digits (fewer when no value is written with that many). So
  does any value of 1e16 or more (beyond the contract: integers to 2**53, other numbers to 1e15).
- Thousands separators (`12,345.7`), a plain `-` for negatives, and no sign on a value that rounds
  to zero (`0.0`, not `-0.0`).

Every digit is rounded as JavaScript's toFixed and toExponential round (the exact binary value,
half away from zero), so site.js prints the same text from the embedded raw values. The raw value
itself reads as JavaScript's String(value) (view.cell_text): the cells' `title`, the downloads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

SIGNIFICANT = 4  # significant digits of a column's typical value
MAX_DECIMALS = 6  # fixed notation never shows more decimals
SCIENTIFIC_BELOW = 1e-4  # a column whose scale is smaller prints in scientific notation
SCIENTIFIC_DIGITS = 3  # significant digits in scientific notation
FIXED_LIMIT = 1e16  # |x| at or above this prints in scientific notation (toFixed's digits run out)
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


@dataclass(frozen=True)
class Precision:
    """decimals: fixed notation with this many decimals; None: scientific with `digits` digits."""

    decimals: int | None
    digits: int = SCIENTIFIC_DIGITS


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite_number(value: object) -> float | None:
    """The value as a finite float, or None (not a number, NaN, infinite, or too big for a float)."""
    if not is_number(value):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def written_decimals(x: float) -> int:
    """Decimals of the shortest text that reads back as x: 412.5 -> 1, 380.0 -> 0, 1.5e-7 -> 8."""
    exponent = Decimal(repr(x)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def written_digits(x: float) -> int:
    """Significant digits of the shortest text that reads back as x: 1e-7 -> 1, 0.00125 -> 3."""
    return len(Decimal(repr(abs(x))).normalize().as_tuple().digits)


def precision_of(values: Iterable[object]) -> Precision:
    """One precision for every value of a column (non-numbers and non-finite values ignored)."""
    numbers = [x for x in map(finite_number, values) if x is not None]
    magnitudes = sorted(abs(x) for x in numbers if x != 0)
    if not magnitudes:
        return Precision(0)
    scale = magnitudes[(len(magnitudes) - 1) // 2]
    needed = SIGNIFICANT - 1 - Decimal(repr(scale)).adjusted()
    if scale < SCIENTIFIC_BELOW or scale >= FIXED_LIMIT:
        return Precision(None, max(1, min(SCIENTIFIC_DIGITS, max(written_digits(x) for x in magnitudes))))
    most = max(written_decimals(x) for x in numbers)
    return Precision(max(0, min(needed, most, MAX_DECIMALS)))


def group(digits: str) -> str:
    """Thousands separators in a run of integer digits: 1234567 -> 1,234,567."""
    head = len(digits) % 3 or 3
    return ",".join([digits[:head], *(digits[i:i + 3] for i in range(head, len(digits), 3))])


def fixed(x: float | Decimal, decimals: int) -> str:
    """x with exactly `decimals` decimals (toFixed's rounding) and thousands separators."""
    exact = x if isinstance(x, Decimal) else Decimal(x)
    text = f"{abs(exact).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP):f}"
    whole, _, fraction = text.partition(".")
    shown = group(whole) + (f".{fraction}" if fraction else "")
    negative = exact < 0 and any(c not in "0." for c in text)  # no "-0.0"
    return ("-" if negative else "") + shown


def scientific(x: float | Decimal, digits: int, trim: bool = False) -> str:
    """x as `1.23 × 10⁻⁷` with `digits` significant digits (toExponential's rounding); `trim` drops
    trailing zeros of the mantissa (axis labels: `1.5 × 10⁻⁷`, not `1.50 × 10⁻⁷`)."""
    exact = x if isinstance(x, Decimal) else Decimal(x)
    if exact == 0:
        return "0"
    with localcontext() as ctx:
        ctx.prec, ctx.rounding = digits, ROUND_HALF_UP
        rounded = +abs(exact)
    exponent = rounded.adjusted()
    mantissa = "".join(map(str, rounded.as_tuple().digits)).ljust(digits, "0")[:digits]
    if trim:
        mantissa = mantissa.rstrip("0") or "0"
    text = mantissa[0] + (f".{mantissa[1:]}" if len(mantissa) > 1 else "")
    return f"{'-' if exact < 0 else ''}{text} × 10{str(exponent).translate(_SUPERSCRIPT)}"


def format_number(value: object, precision: Precision) -> str:
    """How a number reads in a cell, the chart and the change column; "" for a non-number."""
    x = value if isinstance(value, Decimal) else finite_number(value)
    if x is None:
        return ""
    if precision.decimals is not None and abs(x) < FIXED_LIMIT:
        return fixed(x, precision.decimals)
    return scientific(x, precision.digits if precision.decimals is None else SCIENTIFIC_DIGITS)


def percent(pct: float) -> str:
    """A change in percent, rounded to 0.1: '+3.1%', '-20.0%', '0.0%', '+12,345.6%'."""
    shown = fixed(pct, 1) if abs(pct) < FIXED_LIMIT else scientific(pct, SCIENTIFIC_DIGITS)
    return ("+" if pct > 0 and shown != "0.0" else "") + shown + "%"


def tick_label(value: Decimal, precision: Precision) -> str:
    if precision.decimals is not None:
        return fixed(value, precision.decimals)
    return scientific(value, precision.digits, trim=True)


# Advance widths (in em) of what a number label holds, a little above the widest common sans
# (DejaVu Sans, Verdana): an estimate that errs long keeps the chart's text inside its box.
_EM = {**dict.fromkeys("0123456789", 0.66), ",": 0.36, ".": 0.36, "-": 0.42, " ": 0.36, "×": 0.86,
       "(": 0.42, ")": 0.42, "–": 0.56, "%": 1.0, "…": 1.0,
       **dict.fromkeys("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", 0.5), **dict.fromkeys("iljtfI!|:;'", 0.36),
       **dict.fromkeys("mwMW@", 1.04)}
_EM_OTHER = 0.74  # any other letter or sign


def text_width(text: str, font_size: float) -> float:
    """An upper estimate of the rendered width of `text` at `font_size` (SVG user units)."""
    return sum(_EM.get(c, _EM_OTHER) for c in text) * font_size
