"""The Python twin of :func:`lakehouse.ingest.transforms.parse_records` for one record, used where
there is no Spark (the decision API): :func:`check_transaction` gives one transaction the reason, or
the typed values, that parse_records gives it (tests/unit/ingest/test_record_rules.py runs both).

It reads the value as Spark does: text, U+FFFD for bytes that are not UTF-8; ``from_json``'s Jackson,
which takes single quotes and NaN/±Infinity/±INF, 1000 levels and 1000 digits at most, keeps the last
of a repeated key and ignores what follows the object; a string field given another JSON value holds
Jackson's text of it (``12.50`` → ``12.5``, ``1e10`` → ``1.0E10``, NaN → ``"NaN"`` with its quotes);
a lone surrogate reads ``?``; an id is an object only if ``try_parse_json`` reads the record too (not
with NaN, single quotes or a repeated key). Casts are Spark's (``1d``, ``0x1p3``, ``inf``; t/yes/1
trimmed; ``2026``, ``2026-1-1 1:2:3``, zones ``+2``, ``GMT+2``, ``PST``, ``Europe/Paris``), and Java's
``$`` also matches before a final line break (``"1.2.3.4\\n"`` is a valid IP). Known differences,
rare: a JSON float in a text field gets the shortest digits where Java 17 may give more (``1e23`` →
``9.999999999999999E22``); zones are Python's (no ``SystemV/*``); a dict JSON cannot hold: TypeError.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from lakehouse.contract.schemas import IDENTIFIERS, TRANSACTION_FIELDS
from lakehouse.ingest.transforms import IPV4, IPV6, MAX_ID_LENGTH, NUMERIC_RANGES
from lakehouse.settings import DataContractSettings

FIELDS = TRANSACTION_FIELDS
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MAX_DEPTH, _MAX_DIGITS = 1000, 1000  # Jackson's StreamReadConstraints
_STRING = r"((?:[^{q}\\\x00-\x1f]|\\[\"\\/bfnrt']|\\u[0-9a-fA-F]{{4}})*)"
_TOKEN = re.compile(  # groups: 1 punctuation, 2 and 3 strings, 4 literals, 5 lenient numbers, 6 numbers
    rf"[ \t\n\r]*(?:([{{}}\[\]:,])|\"{_STRING.format(q=chr(34))}\"|'{_STRING.format(q=chr(39))}'|(true|false|null)"
    r"|(NaN|[+-]?Infinity|[+-]INF)|(-?(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE][+-]?([0-9]+))?))"
)
_LITERALS = {"true": True, "false": False, "null": None} | {k: float(k) for k in ("NaN", "Infinity", "+INF", "-INF")}
_LITERALS |= {"+Infinity": math.inf, "-Infinity": -math.inf}
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|(.))")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "'": "'"}
_OUT_ESCAPES = {v: "\\" + k for k, v in _ESCAPES.items() if k not in "/'"}
_TO_ESCAPE = re.compile(r'["\\\x00-\x1f\ud800-\udfff\U00010000-\U0010ffff]')
_JAVA_END = r"(?:\r\n|[\n\r\x85\u2028\u2029])?\Z"  # Java's $
_IPV4, _IPV6 = (re.compile(p.replace("$", _JAVA_END)) for p in (IPV4, IPV6))
_SPACE = r" \t\n\x0b\f\r\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"  # Java's \s and \p{Z}
_UNSAFE = re.compile(rf"^[{_SPACE}]|[{_SPACE}]\Z|[\x00-\x1f\x7f-\x9f\ufffd]")
_TRIM = "".join(map(chr, range(33)))  # Java's String.trim
_DOUBLE = re.compile(  # Java's Double.parseDouble: groups 1 NaN, 2 Infinity, 3 hexadecimal
    r"[+-]?(?:(NaN)|(Infinity)|(?:(0[xX](?:[0-9a-fA-F]+\.?|[0-9a-fA-F]*\.[0-9a-fA-F]+)[pP][+-]?[0-9]+)"
    r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)[fFdD]?)"
)
_SPECIAL_DOUBLES = {k: float(k) for k in ("inf", "+inf", "infinity", "+infinity", "-inf", "-infinity", "nan")}
_BOOLEANS = dict.fromkeys(("t", "true", "y", "yes", "1"), True) | dict.fromkeys(("f", "false", "n", "no", "0"), False)
_OFFSET = re.compile(r"([+-])(?:([0-9])|([0-9]{2})(?:([0-9]{2})([0-9]{2})?|:([0-9]{2})(?::([0-9]{2}))?)?)")
_DIGITS = {0: range(4, 7), 6: range(10**9), 7: range(3)}  # digits in a timestamp's segment: year, fraction, zone
_REGION = re.compile(r"[A-Za-z][A-Za-z0-9~/._+-]+")
_SHORT_IDS_TEXT = (  # java.time.ZoneId.SHORT_IDS
    "EST=-05:00 MST=-07:00 HST=-10:00 ACT=Australia/Darwin AET=Australia/Sydney ART=Africa/Cairo AST=America/"
    "Anchorage AGT=America/Argentina/Buenos_Aires BET=America/Sao_Paulo BST=Asia/Dhaka CAT=Africa/Harare CNT="
    "America/St_Johns CST=America/Chicago CTT=Asia/Shanghai EAT=Africa/Addis_Ababa ECT=Europe/Paris IET=America/"
    "Indiana/Indianapolis IST=Asia/Kolkata JST=Asia/Tokyo MIT=Pacific/Apia NET=Asia/Yerevan NST=Pacific/Auckland "
    "PLT=Asia/Karachi PNT=America/Phoenix PRT=America/Puerto_Rico PST=America/Los_Angeles SST=Pacific/Guadalcanal "
    "VST=Asia/Ho_Chi_Minh"
)
_SHORT_IDS = dict(re.findall(r"(\w+)=(\S+)", _SHORT_IDS_TEXT))
_REASON_FIELDS = {"negative_amount": "amount", "absurd_amount": "amount", "unknown_currency": "currency"}
_REASON_FIELDS["invalid_ip"] = "device_ip"


@dataclass(frozen=True)
class Checked:
    values: dict[str, object] | None  # the typed contract values when valid (timestamp: an aware UTC datetime)
    reason: str | None  # None when valid, else the first failing rule's reason, as parse_records gives it


class _Nested(str):
    """A JSON object or array, held as Jackson's compact text of it."""


def _pairs(s: str) -> str:  # UTF-16 surrogate pairs joined into one character, as in a Java string
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _java_text(s: str) -> str:  # a string as Spark holds it, in UTF-8: a lone surrogate becomes ?
    return _pairs(s).encode("utf-8", "replace").decode("utf-8")


def _unescape(body: str) -> str:
    return _pairs(_ESCAPE.sub(lambda m: chr(int(m[1], 16)) if m[1] else _ESCAPES[m[2]], body))


def _json_text(value: object) -> str:
    """Jackson's compact text of a parsed value, as its generator writes it (doubles: Java's layout)."""
    if isinstance(value, str) and not isinstance(value, _Nested):

        def escape(m: re.Match[str]) -> str:  # a character outside the BMP: each of its UTF-16 units
            units = m[0].encode("utf-16-be", "surrogatepass").hex().upper()
            return _OUT_ESCAPES.get(m[0]) or re.sub("(....)", r"\\u\1", units)

        return f'"{_TO_ESCAPE.sub(escape, value)}"'
    if not isinstance(value, float) or not math.isfinite(value) or value == 0:
        special = {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"', "True": "true", "False": "false"}
        return "null" if value is None else special.get(str(value), str(value))
    digits = Decimal(repr(abs(value))).as_tuple()
    point, ds = len(digits.digits) + int(digits.exponent), "".join(map(str, digits.digits)).rstrip("0")
    if 1e-3 <= abs(value) < 1e7:
        text = "0." + "0" * -point + ds if point <= 0 else ds[:point].ljust(point, "0") + "." + (ds[point:] or "0")
    else:
        text = f"{ds[0]}.{ds[1:] or '0'}E{point - 1}"
    return "-" + text if value < 0 else text


def _read(text: str) -> tuple[dict[str, str | None], set[str]] | None:
    """The root object's fields as from_json reads them, and those that try_parse_json reads as an
    object or array; None when from_json gives no row. Iterative: no recursion to Jackson's limit."""
    stack: list[tuple[bool, list[str], list[str], str]] = []  # per container: object?, texts, keys, key in parent
    fields: dict[str, str | None] = {}
    nested: dict[str, bool] = {}
    pos, lenient, state, first, key = 0, False, "value", False, ""
    while True:
        m = _TOKEN.match(text, pos)
        if not m or (not stack and m[1] != "{"):
            return None
        pos, punct, string = m.end(), m[1] or "", m[2] if m[2] is not None else m[3]
        lenient |= bool(m[3] is not None or m[5] or (string and any(e[2] == "'" for e in _ESCAPE.finditer(string))))
        in_object = bool(stack) and stack[-1][0]
        if stack and punct == ("}" if in_object else "]") and (state == "after" or first):
            is_object, texts, keys, key = stack.pop()
            lenient |= len(set(keys)) < len(keys)
            if not stack:  # and the fields that try_parse_json reads as an object or array
                return fields, set() if lenient else {k for k, is_nested in nested.items() if is_nested}
            value: object = _Nested(("{%s}" if is_object else "[%s]") % ",".join(texts))
        elif state == "after" and punct == ",":
            state, first = "key" if in_object else "value", False
            continue
        elif state == "key" and string is not None and (colon := _TOKEN.match(text, pos)) and colon[1] == ":":
            key, state, first, pos = _unescape(string), "value", False, colon.end()
            continue
        elif state == "value" and punct in ("{", "[") and len(stack) < _MAX_DEPTH:
            stack.append((punct == "{", [], [], key))
            state, first = "key" if punct == "{" else "value", True
            continue
        elif state == "value" and not punct and (not m[6] or len(m[7] + (m[8] or "") + (m[9] or "")) <= _MAX_DIGITS):
            value = _unescape(string) if string is not None else _LITERALS.get(m[4] or m[5], "")
            value = (float(m[6]) if m[8] or m[9] else int(m[6])) if m[6] else value
        else:
            return None
        is_object, texts, keys, _ = stack[-1]
        value_text = _json_text(value)
        texts.append(f"{_json_text(key)}:{value_text}" if is_object else value_text)
        keys += [key] if is_object else []
        if len(stack) == 1:  # a field: a string as Spark holds it, another value as Jackson's text
            fields[key] = None if value is None else _java_text(value) if type(value) is str else value_text
            nested[key] = isinstance(value, _Nested)
        state, first = "after", False


def _to_double(text: str) -> float | None:
    """Spark's string → double cast: Java's Double.parseDouble, then Spark's inf and nan."""
    t = text.strip(_TRIM)
    if not (m := _DOUBLE.fullmatch(t)):
        return _SPECIAL_DOUBLES.get(t.lower())
    infinity = -math.inf if t[0] == "-" else math.inf
    if m[1] or m[2]:
        return math.nan if m[1] else infinity
    try:
        return float.fromhex(t.rstrip("fFdD")) if m[3] else float(t.rstrip("fFdD"))
    except OverflowError:
        return infinity


_regions = cache(lambda: frozenset(available_timezones() - {"Factory", "localtime", "posixrules", "ROC"}))


def _zone(name: str) -> int | ZoneInfo:
    """Spark's getZoneId, java.time.ZoneId.of with SHORT_IDS: seconds east of UTC, or a region."""
    name = re.sub(r"([+-])([0-9]):", r"\g<1>0\2:", name, count=1)
    name = re.sub(r"([+-])([0-9]{2}):([0-9])\Z", r"\1\2:0\3", name, count=1)
    name = _SHORT_IDS.get(name, name)
    prefix = next((p for p in ("UTC", "GMT", "UT") if name.startswith(p)), "")
    if name == "Z" or (name and name == prefix):
        return 0
    if len(name) <= 1 or name[len(prefix)] in "+-":  # java.time.ZoneOffset.of
        m = _OFFSET.fullmatch(name[len(prefix) :])
        h, mi, s = (int(g or 0) for g in (m[2] or m[3], m[4] or m[6], m[5] or m[7])) if m else (19, 0, 0)
        if mi > 59 or s > 59 or h * 3600 + mi * 60 + s > 64800:
            raise ValueError(name)
        return (h * 3600 + mi * 60 + s) * (-1 if m[1] == "-" else 1)
    if not _REGION.fullmatch(name) or name not in _regions():
        raise ValueError(name)
    return ZoneInfo(name)


def _days(year: int, month: int, day: int) -> int:  # since 1970-01-01, proleptic Gregorian, any year
    cycles, rest = divmod(year, 400)
    return (date(2000 + rest, month, day) - date(1970, 1, 1)).days + (cycles - 5) * 146097


def _to_timestamp(text: str) -> int | None:
    """Spark's string → timestamp cast (stringToTimestamp, session zone UTC), microseconds since 1970."""
    b = text.encode().strip(_TRIM.encode() + b"\x7f")
    seg, i, value, digits, fraction_digits, sign, j = [1, 1, 1, 0, 0, 0, 0, 0, 0], 0, 0, 0, 0, 0, 0
    just_time, tz = False, None
    if b[:1] in (b"+", b"-"):
        sign, j = (1 if b[0] == 43 else -1), 1
    while j < len(b):
        c = b[j]
        if 48 <= c <= 57:
            fraction_digits += i == 6
            value = value * 10 + c - 48 if i != 6 or digits < 6 else value
            digits += 1
        elif j == 0 and c == 84 and text[0] == "T":  # T first of all: a time without a date
            just_time, i = True, i + 3
        else:
            if i == 0 and c == 58 and not sign:  # hh: a time without a date
                just_time, i = True, 3
            separator = (i < 2 and c == 45) or (i == 2 and c in (32, 84)) or (i in (3, 4) and c == 58) or i in (5, 6)
            if not separator or digits not in _DIGITS.get(i, range(1, 3)):
                return None
            seg[i], value, digits = value, 0, 0
            if i in (5, 6) and not (c == 46 and i == 5):  # the rest is the zone
                tz, j, i = b[j:].decode(errors="replace"), len(b), i + (i == 5)
            i += 1
        j += 1
    if digits not in _DIGITS.get(i, range(1, 3)):
        return None
    seg[i] = value
    year, month, day, hour, minute, second = seg[0] * (sign or 1), *seg[1:6]
    try:
        zone, clock = _zone(tz.strip(_TRIM)) if tz is not None else 0, time(hour, minute, second)
        if just_time:  # today, where the zone is
            now = datetime.now(UTC) + timedelta(seconds=zone) if isinstance(zone, int) else datetime.now(zone)
            year, month, day = now.year, now.month, now.day
        if isinstance(zone, ZoneInfo):  # java.time's choice in a gap or an overlap is Python's fold=0
            # Beyond Python's years, the same day 400 years on: the zone's LMT before, its last rules after.
            like = year if 1 <= year <= 9999 else (400 if year < 1 else 9600) + year % 400
            zone = int(datetime.combine(date(like, month, day), clock, zone).utcoffset().total_seconds())
        local = _days(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    except (ValueError, KeyError, OverflowError):
        return None
    result = (local - zone) * 1_000_000 + seg[6] * 10 ** max(0, 6 - fraction_digits)
    return result if -(2**63) <= result < 2**63 else None


_CASTS = {"string": str, "double": _to_double, "timestamp": _to_timestamp}
_CASTS["boolean"] = lambda text: _BOOLEANS.get(text.strip(_TRIM + "\x7f").lower())


def check_transaction(
    record: bytes | str | dict, *, kafka_timestamp: datetime, contract: DataContractSettings
) -> Checked:
    """One transaction through parse_records' rules. ``record``: the raw Kafka value or request body,
    or the JSON object decoded; ``kafka_timestamp``: the record's (naive means UTC)."""
    record = record.decode("utf-8", "replace") if isinstance(record, bytes) else record
    read = _read(json.dumps(record) if isinstance(record, dict) else _java_text(record))
    if read is None:
        return Checked(None, "malformed_json")
    fields, nested = read
    raw = {f.name: fields.get(f.name) for f in FIELDS}
    typed = {f.name: None if raw[f.name] is None else _CASTS[f.kind](raw[f.name]) for f in FIELDS}
    kafka = kafka_timestamp if kafka_timestamp.tzinfo else kafka_timestamp.replace(tzinfo=UTC)
    ahead = (kafka - EPOCH) // _MICROSECOND + int(Decimal(f"{contract.max_ahead_minutes * 60:.3f}") * 10**6)
    start, end = (_days(d.year, d.month, d.day) * 86_400_000_000 for d in contract.time_range)

    def rules() -> Iterator[tuple[bool, str]]:
        # parse_records' rules in order; lazy, so each may take it that the earlier ones did not apply
        yield from ((raw[f.name] is None, f"missing_field:{f.name}") for f in FIELDS if f.required)
        for f in (f for f in FIELDS if f.kind != "string"):
            yield raw[f.name] is not None and typed[f.name] is None, f"bad_type:{f.name}"
        for name in (f.name for f in FIELDS if f.name in IDENTIFIERS and raw[f.name] is not None):
            yield name in nested, f"bad_type:{name}"
            yield raw[name] == "" or bool(_UNSAFE.search(raw[name])) or len(raw[name]) > MAX_ID_LENGTH, f"bad_id:{name}"
        there = [f for f in FIELDS if typed[f.name] is not None]
        yield from ((not math.isfinite(typed[f.name]), f"not_finite:{f.name}") for f in there if f.kind == "double")
        for f in (f for f in there if f.kind == "timestamp" or f.name in NUMERIC_RANGES):
            low, high = (start, end - 1) if f.kind == "timestamp" else NUMERIC_RANGES[f.name]
            yield not low <= typed[f.name] <= high, f"out_of_range:{f.name}"
        yield from ((typed[f.name] > ahead, f"future_time:{f.name}") for f in there if f.kind == "timestamp")
        amount, currency, ip = typed.get("amount"), typed.get("currency"), typed.get("device_ip")
        yield amount is not None and amount <= 0, "negative_amount"
        yield amount is not None and amount > contract.max_amount, "absurd_amount"
        yield currency is not None and currency not in contract.currencies, "unknown_currency"
        yield ip is not None and not _IPV4.match(ip) and not (":" in ip and _IPV6.match(ip)), "invalid_ip"

    reason = next((reason for applies, reason in rules() if applies), None)
    if reason is not None:
        return Checked(None, reason)
    times = {f.name: EPOCH + typed[f.name] * _MICROSECOND for f in FIELDS if f.kind == "timestamp"}
    return Checked({**typed, **times}, None)


def field_of(reason: str) -> str | None:
    """The field a reason names: ``missing_field:amount`` → amount, ``invalid_ip`` → device_ip,
    ``malformed_json`` → None."""
    return reason.split(":", 1)[1] if ":" in reason else _REASON_FIELDS.get(reason)
