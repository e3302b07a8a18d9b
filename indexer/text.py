"""Text normalisation, content hashing and mis-decoding (mojibake) checks."""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import math
import re
import unicodedata
from typing import Any

# Longest description accepted, in characters after normalisation. The model reads at
# most 256 tokens and the tokenizer splits Hangul into jamo (two to three tokens a
# syllable), so anything much longer would be silently truncated by the model.
MAX_TEXT_CHARS = 1000

_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Unicode NFC, then every run of white space folded to one space, ends trimmed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def content_hash(normalized: str) -> str:
    """Stable key of a normalised text (hex SHA-256)."""
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def derived_id(normalized: str) -> str:
    """The id given to a row that has no id column: ``t-`` and 16 hex digits of its hash."""
    return "t-" + content_hash(normalized)[:16]


def _continuation_chars() -> str:
    """How the UTF-8 continuation bytes 0x80-0xBF look when read as Windows-1252 or
    Latin-1."""
    chars = set()
    for b in range(0x80, 0xC0):
        chars.add(bytes([b]).decode("latin-1"))
        try:
            chars.add(bytes([b]).decode("cp1252"))
        except UnicodeDecodeError:
            pass
    return "".join(sorted(chars))


# A UTF-8 lead byte (0xC2-0xF4, seen as Â..ô) followed by a continuation byte: the
# signature ftfy's own score misses when some bytes were lost on the way (the seed card).
_LEAD_THEN_CONTINUATION = re.compile("[\u00c2-\u00f4][" + re.escape(_continuation_chars()) + "]")


def looks_misdecoded(text: str) -> bool:
    """True when the text looks like UTF-8 that was decoded as Windows-1252 or Latin-1."""
    from ftfy.badness import is_bad  # loaded by a build, not by a search

    return is_bad(text) or _LEAD_THEN_CONTINUATION.search(text) is not None


def repair_encoding(text: str) -> str | None:
    """Repair mis-decoded text with ftfy; None when the repair still leaves mojibake
    (bytes lost in the mis-decoding cannot be brought back)."""
    import ftfy

    fixed = ftfy.fix_text(text, uncurl_quotes=False, fix_latin_ligatures=False)
    if looks_misdecoded(fixed):
        return None
    return fixed


# Metadata bounds: deeper or larger values are refused with the row named. Search
# results return metadata with every hit, and SQLite's JSON functions stop at depth
# 1000 (deep values also overflow Python's recursion when printed).
MAX_META_DEPTH = 16
MAX_META_BYTES = 64 * 1024


def has_lone_surrogate(s: str) -> bool:
    """True when ``s`` cannot be written as UTF-8 (a lone surrogate from broken JSON)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def clean_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Metadata as JSON can hold it. Non-finite numbers (NaN, inf: a missing value in a
    Parquet or CSV column, or an overflow like 1e400) become null; dates and times
    become ISO 8601 strings; decimals become numbers (integers when whole); numpy
    scalars become Python numbers. Raises ValueError, saying what and where, for
    binary values, lone surrogates, nesting deeper than MAX_META_DEPTH and values
    larger than MAX_META_BYTES in all."""
    out = _clean(meta, "", 0)
    size = len(json.dumps(out, ensure_ascii=False).encode("utf-8"))
    if size > MAX_META_BYTES:
        raise ValueError(f"metadata is {size} bytes as JSON; the limit is {MAX_META_BYTES}")
    return out


def _clean(value: Any, where: str, depth: int) -> Any:
    if depth > MAX_META_DEPTH:
        raise ValueError(f"metadata nests deeper than {MAX_META_DEPTH} levels (at {where!r})")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if has_lone_surrogate(value):
            raise ValueError(f"metadata {where!r} holds a lone surrogate (not valid Unicode)")
        if "\x00" in value:
            # SQLite's JSON functions end a string at NUL, so it could never be filtered.
            raise ValueError(f"metadata {where!r} holds a NUL character")
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise ValueError(f"metadata {where!r} is binary; store it as text (e.g. base64)")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = str(k)
            if has_lone_surrogate(key):
                raise ValueError(f"a metadata key under {where!r} holds a lone surrogate")
            if "\x00" in key:
                raise ValueError(f"a metadata key under {where!r} holds a NUL character")
            out[key] = _clean(v, f"{where}.{key}" if where else key, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_clean(v, f"{where}[{n}]", depth + 1) for n, v in enumerate(value)]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _clean(item(), where, depth)
    raise ValueError(f"metadata {where!r} is a {type(value).__name__}, which JSON cannot hold")
