"""The S3 contract (v1): key layout and the rules a batch and its rows must follow.

Shared by the API (which reads batches) and the publish command (which writes them), so that
both sides agree on exactly one definition.
"""

from __future__ import annotations

import datetime as _dt
import re

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
BATCH_FILE = "predictions.json"
POINTER_FILE = "latest.json"
REPORT_FILE = "report.json"
RETRACTED_DIR = "retracted/"
DEFAULT_PREFIX = "predictions/"
# What the publish command stores with a batch it validated, as S3 user metadata (x-amz-meta-*):
# the SHA-256 of the JSON (uncompressed), the MD5 of the stored bytes and this mark. A reader whose
# object's ETag is that MD5, or whose body hashes to that SHA-256, may skip proving the rows' grammar
# again (store/batch.py); any other writer's batch is read strictly. The mark also says how publish
# encodes: compact JSON (encode()'s options), every prediction's first key its "id". It changes
# whenever the publish command's checks or encoding stop covering what the reader relies on.
SHA256_METADATA = "sha256"
MD5_METADATA = "md5"  # of the bytes as stored: S3's ETag of a single-part upload without SSE-KMS
VALIDATED_METADATA = "validated"
VALIDATED_MARK = "publish-v1"
# The publish gate's verdict on a stored batch (chalice_app/publishing/gate.py), which the API answers
# with each page: passed, or forced (published with --force over a refusal).
GATE_METADATA = "gate"
GATE_VERDICTS = ("passed", "forced")


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def is_valid_date(value: object) -> bool:
    """True for a real calendar date written YYYY-MM-DD (2026-02-30 is not one)."""
    if not isinstance(value, str) or DATE_PATTERN.fullmatch(value) is None:
        return False
    try:
        _dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


# Numbers every reader takes exactly as written: a JavaScript Number (the site's script, most
# clients) holds integers exactly up to 2**53 - 1, and 1e15 keeps every float far from overflow in
# any arithmetic a reader may do (sums, ranges, chart scales) while leaving 15 significant digits.
MAX_SAFE_INTEGER = 2**53 - 1
MAX_FLOAT_MAGNITUDE = 1e15
NUMBER_RULE = f"integers within ±{MAX_SAFE_INTEGER} and other numbers finite within ±1e15"
# What a `fields` entry may say about its column.
FIELD_TYPES = ("string", "number", "boolean")
FIELD_KEYS = frozenset({"name", "label", "type"})
MAX_META_TEXT = 256
# 2026-11-23T04:00:00Z, 2026-11-23T04:00:00.123+01:00, 2026-11-23 04:00 (then read as UTC-less)
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
                        r"(Z|[+-][0-9]{2}:[0-9]{2})?")
_SURROGATE = re.compile("[\ud800-\udfff]")


def is_number_in_range(value: object) -> bool:
    """A number of the contract: not a bool, an int within ±(2**53 - 1) or a float within ±1e15."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if isinstance(value, float):
        return -MAX_FLOAT_MAGNITUDE <= value <= MAX_FLOAT_MAGNITUDE  # NaN compares False
    return False


def has_text_form(value: str) -> bool:
    """False for a string holding a lone surrogate (from JSON's "\\ud800"): it has no UTF-8 form."""
    return value.isascii() or _SURROGATE.search(value) is None


def is_scalar(value: object) -> bool:
    """A value a prediction field may hold: text with a UTF-8 form, a number in range, a boolean or null."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        return has_text_form(value)
    if isinstance(value, (int, float)):
        return is_number_in_range(value)
    return False


def _text_problem(what: str, value: object, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        return f"{what} must be a non-empty string, got {_describe(value)}"
    if len(value) > MAX_META_TEXT:
        return f"{what} is longer than {MAX_META_TEXT} characters"
    if not has_text_form(value):
        return f"{what} holds a lone surrogate (\\ud800-\\udfff), which has no UTF-8 form"
    return None


def model_problem(model: object) -> str | None:
    """Why `model` is not {"name": str, "version": str, ...}, or None."""
    if not isinstance(model, dict):
        return f'model must be an object with string "name" and "version", got {_describe(model)}'
    return _text_problem("model name", model.get("name")) or _text_problem("model version", model.get("version"))


def fields_problem(fields: object) -> str | None:
    """Why `fields` is not a list of {"name", "label", "type"} objects, or None."""
    if not isinstance(fields, list):
        return f'fields must be a list of {{"name", "label", "type"}} objects, got {_describe(fields)}'
    seen: set[str] = set()
    for n, field in enumerate(fields, start=1):
        where = f"fields[{n}]"
        if not isinstance(field, dict):
            return f'{where} must be an object with "name", "label" and "type", got {_describe(field)}'
        unknown = sorted(str(k) for k in field if k not in FIELD_KEYS)
        if unknown:
            return f"{where} has unknown key(s) {', '.join(unknown)[:80]}; allowed: label, name, type"
        problem = _text_problem(f"{where} name", field.get("name")) or _text_problem(
            f"{where} label", field.get("label"), required=False)
        if problem:
            return problem
        if field.get("type") not in FIELD_TYPES:
            return f"{where} type must be one of {', '.join(FIELD_TYPES)}, got {_describe(field.get('type'))}"
        if field["name"] in seen:
            return f"{where} repeats the name {field['name'][:60]!r}"
        seen.add(field["name"])
    return None


def is_timestamp(value: object) -> bool:
    """An ISO 8601 date and time such as 2026-11-23T04:00:00Z (a real one: no hour 25)."""
    if not isinstance(value, str) or _TIMESTAMP.fullmatch(value) is None:
        return False
    try:
        _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def generated_at_problem(value: object) -> str | None:
    if is_timestamp(value):
        return None
    return f"generated_at must be an ISO 8601 timestamp such as 2026-11-23T04:00:00Z, got {_describe(value)}"


def document_problem(doc: object) -> str | None:
    """The first reason a whole batch document breaks the contract, rows aside; None if it does not."""
    if not isinstance(doc, dict):
        return f"a batch must be an object, got {_describe(doc)}"
    if not is_valid_date(doc.get("date")):
        return f"date must be a real date written YYYY-MM-DD, got {_describe(doc.get('date'))}"
    problem = generated_at_problem(doc.get("generated_at")) or model_problem(doc.get("model"))
    if problem is None and doc.get("fields") is not None:
        problem = fields_problem(doc["fields"])
    if problem is None and not isinstance(doc.get("predictions"), list):
        problem = f'"predictions" must be a list, got {_describe(doc.get("predictions"))}'
    return problem


def _describe(value: object) -> str:
    """A value's JSON type and a short, printable rendering of it, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        text = repr(value) if isinstance(value, float) else (str(value) if abs(value) < 10**40 else "a huge integer")
        return f"number {text}"
    if isinstance(value, str):
        return "string " + ascii(value[:40])[1:-1].join('""') + ("..." if len(value) > 40 else "")
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def normalize_prefix(prefix: str) -> str:
    """'' stays '' (bucket root); anything else ends with exactly one '/'."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def batch_key(prefix: str, date: str) -> str:
    """The one key a batch may live at. Only ever called with a validated date."""
    if not is_valid_date(date):
        raise ValueError(f"not a YYYY-MM-DD date: {date!r}")
    return f"{prefix}{date}/{BATCH_FILE}"


def report_key(prefix: str, date: str) -> str:
    """The publish gate's report on a batch, beside it (chalice_app/publishing/gate.py)."""
    if not is_valid_date(date):
        raise ValueError(f"not a YYYY-MM-DD date: {date!r}")
    return f"{prefix}{date}/{REPORT_FILE}"


def retracted_key(prefix: str, date: str) -> str:
    """The mark of a date a retract withdrew from latest (chalice_app/publishing/audit.py)."""
    if not is_valid_date(date):
        raise ValueError(f"not a YYYY-MM-DD date: {date!r}")
    return f"{prefix}{RETRACTED_DIR}{date}.json"


def pointer_key(prefix: str) -> str:
    return f"{prefix}{POINTER_FILE}"


def date_from_key(prefix: str, key: str) -> str | None:
    """'predictions/2026-11-23/predictions.json' -> '2026-11-23'; anything else -> None."""
    if not key.startswith(prefix) or not key.endswith("/" + BATCH_FILE):
        return None
    date = key[len(prefix) : -len(BATCH_FILE) - 1]
    return date if is_valid_date(date) else None
