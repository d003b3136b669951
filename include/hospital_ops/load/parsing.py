"""Turn the strings hospitals and vendors send into typed values, or say precisely why not.

Real files mix date formats (2026-05-03, 2026/05/03, 20260503, 2026年5月3日), send blank strings
for nulls and booleans as Y/N or 是/否. Every parser returns the value in the text form PostgreSQL's
COPY accepts for the column type, or raises ValueError with a message fit for a quarantine reason.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, TypeVar

from hospital_ops.sources.spec import Column

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d")
_TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%dT%H:%M",
)
_CHINESE_DATE = re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日$")
_MONTH = re.compile(r"^(\d{4})[-/.年](\d{1,2})月?$")
_TRUE = {"y", "yes", "true", "t", "1", "是"}
_FALSE = {"n", "no", "false", "f", "0", "否"}


SHOWN_CHARS = 80  # a value in a message is cut to this many characters (a 10 MB cell makes no 10 MB reason)


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def parse_date(text: str) -> date:
    match = _CHINESE_DATE.match(text)
    if match:
        return date(*(int(part) for part in match.groups()))
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    # a timestamp where a date is expected keeps its date part
    return parse_timestamp(text).date()


def parse_timestamp(text: str) -> datetime:
    for fmt in _TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    match = _CHINESE_DATE.match(text)
    if match:
        return datetime(int(match[1]), int(match[2]), int(match[3]))
    raise ValueError(f"unrecognised date/time {_shown(text)!r}")


def parse_month(text: str) -> date:
    match = _MONTH.match(text)
    if match:
        year, month = int(match.group(1)), int(match.group(2))
        if 1 <= month <= 12:
            return date(year, month, 1)
        raise ValueError(f"month out of range in {_shown(text)!r}")
    return parse_date(text).replace(day=1)


def pseudonymize(value: str, key: bytes) -> str:
    """Keyed hash (HMAC-SHA256) of a personal identifier: stable, not reversible without the key."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def convert(column: Column, raw: object, key: bytes) -> str | None:
    """Return the COPY text for one cell, None for SQL NULL; raise ValueError for a bad value."""
    if raw is None:
        text = ""
    elif isinstance(raw, datetime):
        text = raw.isoformat(sep=" ")
    elif isinstance(raw, date):
        text = raw.isoformat()
    elif isinstance(raw, float) and raw.is_integer():
        text = str(int(raw))
    else:
        text = str(raw).strip()
    if text == "":
        if column.required:
            raise ValueError(f"{column.name}: required value is missing")
        return None
    if column.pii:
        return pseudonymize(text, key)
    kind = column.type
    if kind == "text":
        if column.allowed is not None and text not in column.allowed:
            raise ValueError(f"{column.name}: {_shown(text)!r} is not one of {', '.join(column.allowed)}")
        return text
    if kind == "bool":
        lowered = text.lower()
        if lowered in _TRUE:
            return "true"
        if lowered in _FALSE:
            return "false"
        raise ValueError(f"{column.name}: {_shown(text)!r} is not a yes/no value")
    if kind == "date":
        return _checked(column, text, parse_date).isoformat()
    if kind == "timestamp":
        return _checked(column, text, parse_timestamp).isoformat(sep=" ")
    if kind == "month":
        return _checked(column, text, parse_month).isoformat()
    number = _number(column, text)
    if column.min is not None and number < Decimal(str(column.min)):
        raise ValueError(f"{column.name}: {_shown(text)} below plausible minimum {column.min}")
    if column.max is not None and number > Decimal(str(column.max)):
        raise ValueError(f"{column.name}: {_shown(text)} outside plausible range [{column.min}, {column.max}]")
    return str(number)


def _number(column: Column, text: str) -> Decimal:
    cleaned = text.replace(",", "").replace("¥", "").replace("￥", "")
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{column.name}: {_shown(text)!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{column.name}: {_shown(text)!r} is not a finite number")
    if column.type == "int":
        if number != number.to_integral_value():
            raise ValueError(f"{column.name}: {_shown(text)!r} is not a whole number")
        number = number.quantize(Decimal(1))
    return number


def _checked(column: Column, text: str, parser: Callable[[str], T]) -> T:
    try:
        return parser(text)
    except ValueError as exc:
        raise ValueError(f"{column.name}: {exc}") from None
