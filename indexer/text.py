"""Text normalisation, content hashing and mis-decoding (mojibake) checks."""

from __future__ import annotations

import hashlib
import re
import unicodedata

import ftfy
from ftfy.badness import is_bad

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
    return is_bad(text) or _LEAD_THEN_CONTINUATION.search(text) is not None


def repair_encoding(text: str) -> str | None:
    """Repair mis-decoded text with ftfy; None when the repair still leaves mojibake
    (bytes lost in the mis-decoding cannot be brought back)."""
    fixed = ftfy.fix_text(text, uncurl_quotes=False, fix_latin_ligatures=False)
    if looks_misdecoded(fixed):
        return None
    return fixed
