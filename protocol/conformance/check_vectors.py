#!/usr/bin/env python3
"""Independent conformance check of protocol/test-vectors/sightings.json.

Written from protocol/SPEC.md alone (no reference code was read). Section
numbers (§n) refer to that document. Everything except phone-number
metadata is implemented here from the spec text and the RFCs it cites:

  * §2  phone normalization: preprocessing here, parsing/metadata from the
        PyPI package `phonenumbers` (Python port of libphonenumber);
  * §3  HMAC-SHA256 hashing (stdlib hmac/hashlib);
  * §5  canonical CBOR encoder (hand-written);
  * §6  hostile-input CBOR decoder with the error codes of the §6 table;
  * §7  Ed25519 signing and strict verification (pure Python, RFC 8032);
  * §8  record id (SHA-256);
  * §13 record version 2: link tokens (normalization of senders, campaign
        tags and lure text, keyed SimHash, the 1,000-block) and key 18.
        The registrable domain of a URL needs the Public Suffix List, which
        is not reimplemented here: the vectors' normalized domains are
        hashed and checked against the URL's host instead.

Usage:  python3 check_vectors.py [path/to/sightings.json]
Prints one line per vector, then "N passed, M failed"; exits 1 on failure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import unicodedata

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult

DEFAULT_VECTORS = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "test-vectors", "sightings.json"
)


# ---------------------------------------------------------------------------
# §2 Phone numbers -> E.164
# ---------------------------------------------------------------------------

class NormalizeError(Exception):
    """§2 error; .code is one of the §2 error codes."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


# §2 step 1 says "whitespace" without defining it. We use the Unicode
# White_Space property (the usual meaning of "trim"); Python's str.strip()
# would additionally strip U+001C..U+001F. (Recorded as an ambiguity.)
_WHITE_SPACE = set(
    "\u0009\u000a\u000b\u000c\u000d\u0020\u0085\u00a0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

# §2 step 3: separators that may stand between the two zeros of "00".
_ZERO_SEPARATORS = set(" -.()")

# §2 step 4: libphonenumber parse failure -> §2 error code.
_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown_country_code",
    NumberParseException.NOT_A_NUMBER: "not_a_number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too_short",
    NumberParseException.TOO_SHORT_NSN: "too_short",
    NumberParseException.TOO_LONG: "too_long",
}

# §4.2 line types: libphonenumber PhoneNumberType -> (code, name).
LINE_CODES = {
    "unknown": 0, "mobile": 1, "fixed": 2, "fixed-or-mobile": 3, "voip": 4,
    "toll-free": 5, "premium": 6, "shared-cost": 7, "pager": 8, "uan": 9,
    "personal": 10,
}
_LINE_FROM_TYPE = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "fixed",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed-or-mobile",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.TOLL_FREE: "toll-free",
    PhoneNumberType.PREMIUM_RATE: "premium",
    PhoneNumberType.SHARED_COST: "shared-cost",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.PERSONAL_NUMBER: "personal",
}  # everything else (UNKNOWN, VOICEMAIL, ...) -> "unknown"


def _trim(text: str) -> str:
    start, end = 0, len(text)
    while start < end and text[start] in _WHITE_SPACE:
        start += 1
    while end > start and text[end - 1] in _WHITE_SPACE:
        end -= 1
    return text[start:end]


def _letters(text: str) -> list[str]:
    """§2 step 5: the Unicode letters after an optional leading tel:."""
    if text[:4].lower() == "tel:":
        text = text[4:]
    return [c for c in text if c.isalpha()]


def normalize(text: str, region: str | None, vanity: bool = False) -> dict:
    """§2: returns {"e164", "cc", "region", "line"} or raises NormalizeError."""
    # Step 1: trim; empty; > 64 bytes (UTF-8, after trimming); no ASCII digit.
    text = _trim(text)
    if not text:
        raise NormalizeError("empty")
    if len(text.encode("utf-8")) > 64:
        raise NormalizeError("input_too_long")
    if not any("0" <= c <= "9" for c in text):
        raise NormalizeError("not_a_number")

    # Step 2: the default region must be known (case-insensitive).
    if region is not None:
        region = region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise NormalizeError("unknown_region")

    # Step 3: without a region the text must be international; a leading
    # "00" (separators between the zeros ignored) becomes "+".
    # The spec does not say whether "tel:" is matched case-insensitively;
    # RFC 3966 schemes are case-insensitive, so we match it that way.
    if region is None and not (text.startswith("+") or text[:5].lower() == "tel:+"):
        i = 0
        if i < len(text) and text[i] == "0":
            i += 1
            while i < len(text) and text[i] in _ZERO_SEPARATORS:
                i += 1
            if i < len(text) and text[i] == "0":
                text = "+" + text[i + 1:]
            else:
                raise NormalizeError("no_region")
        else:
            raise NormalizeError("no_region")

    # Step 4: parse with libphonenumber.
    try:
        num = phonenumbers.parse(text, region)
    except NumberParseException as e:
        raise NormalizeError(_PARSE_ERRORS.get(e.error_type, "not_a_number")) from None

    # Step 5: extensions are rejected; then letters, unless vanity numbers
    # were asked for (libphonenumber reads letters as keypad digits).
    if num.extension:
        raise NormalizeError("has_extension")
    letters = _letters(text)
    vanity_word = len(letters) >= 3 and all(c.isascii() for c in letters)
    if letters and not (vanity and vanity_word):
        raise NormalizeError("has_letters")

    # Step 6: assigned country code, then validity; length reasons from
    # libphonenumber's possible-length check.
    if phonenumbers.region_code_for_country_code(num.country_code) == phonenumbers.UNKNOWN_REGION:
        raise NormalizeError("unknown_country_code")
    if not phonenumbers.is_valid_number(num):
        reason = phonenumbers.is_possible_number_with_reason(num)
        if reason == ValidationResult.TOO_SHORT:
            raise NormalizeError("too_short")
        if reason == ValidationResult.TOO_LONG:
            raise NormalizeError("too_long")
        raise NormalizeError("invalid_for_region")

    # Step 7: E.164 string, cc and line type from the same metadata.
    # The spec does not define the "region" reported in the vectors; we take
    # libphonenumber's getRegionCodeForNumber (recorded as missing text).
    e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    assert e164[0] == "+" and e164[1:].isdigit() and len(e164) <= 16, e164
    return {
        "e164": e164,
        "cc": num.country_code,
        "region": phonenumbers.region_code_for_number(num),
        "line": _LINE_FROM_TYPE.get(phonenumbers.number_type(num), "unknown"),
    }


# ---------------------------------------------------------------------------
# §3 Privacy hashing
# ---------------------------------------------------------------------------

NUMBER_TAG = b"sightline/number/v1"  # 19 bytes
BLOCK_TAG = b"sightline/block/v1"    # 18 bytes
assert len(NUMBER_TAG) == 19 and len(BLOCK_TAG) == 18


def block_input(e164: str) -> str:
    """§3: the E.164 text without its last two characters."""
    return e164[:-2]


def number_hash(hash_key: bytes, e164: str) -> bytes:
    return hmac.new(hash_key, NUMBER_TAG + e164.encode("ascii"), hashlib.sha256).digest()


def block_hash(hash_key: bytes, e164: str) -> bytes:
    return hmac.new(hash_key, BLOCK_TAG + block_input(e164).encode("ascii"), hashlib.sha256).digest()


# ---------------------------------------------------------------------------
# §4 Fields
# ---------------------------------------------------------------------------

K_V, K_NETWORK, K_ORIGIN, K_SEQ, K_NUMBER, K_BLOCK, K_CC, K_LINE = range(8)
K_KIND, K_VERDICT, K_CHANNEL, K_BRAND, K_CONFIDENCE, K_COUNT = range(8, 14)
K_FIRST_SEEN, K_LAST_SEEN, K_EXPIRES, K_SIG, K_LINKS, K_ROLE = range(14, 20)

MAX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z
U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1

# §4.1 enumerations (text form -> code)
KIND_CODES = {"smishing": 0, "vishing": 1, "callback": 2, "bec": 3,
              "robocall": 4, "sim-swap": 5, "other": 6}
VERDICT_CODES = {"malicious": 0, "false-positive": 1, "withdrawn": 2, "protected": 3}
ROLE_CODES = {"inbound-only": 0, "outbound": 1}  # §13.5, key 19
CHANNEL_CODES = {"sms": 0, "voice": 1, "email": 2, "chat": 3, "other": 4}

# CBOR value kinds used in a record (§4): key -> "uint" | "bstr" | "tstr"
FIELD_TYPE = {
    K_V: "uint", K_NETWORK: "tstr", K_ORIGIN: "bstr", K_SEQ: "uint",
    K_NUMBER: "bstr", K_BLOCK: "bstr", K_CC: "uint", K_LINE: "uint",
    K_KIND: "uint", K_VERDICT: "uint", K_CHANNEL: "uint", K_BRAND: "tstr",
    K_CONFIDENCE: "uint", K_COUNT: "uint", K_FIRST_SEEN: "uint",
    K_LAST_SEEN: "uint", K_EXPIRES: "uint", K_SIG: "bstr",
    K_LINKS: "links",  # §13.2: array of link entries (bstr)
    K_ROLE: "uint",  # §13.5
}
OPTIONAL_KEYS = {K_BRAND, K_EXPIRES}


def _network_ok(b: bytes) -> bool:
    """§4 key 1: 1-32 bytes of a-z 0-9 '-', first byte not '-'."""
    if not 1 <= len(b) <= 32 or b[0:1] == b"-":
        return False
    return all(c in b"abcdefghijklmnopqrstuvwxyz0123456789-" for c in b)


def _brand_ok(b: bytes) -> bool:
    """§4 key 11: 1-64 bytes of UTF-8, no general-category Cc characters."""
    if not 1 <= len(b) <= 64:
        return False
    try:
        s = b.decode("utf-8")  # strict: rejects overlongs and surrogates
    except UnicodeDecodeError:
        return False
    return not any(unicodedata.category(c) == "Cc" for c in s)


# Per-key range rule (§4 table); seq >= 1 and the cross-field rules are
# checked after all keys, as §6 says.
FIELD_RANGE = {
    K_NETWORK: _network_ok,
    K_ORIGIN: lambda b: len(b) == 32,
    K_SEQ: lambda n: n <= U64_MAX,
    K_NUMBER: lambda b: len(b) == 32,
    K_BLOCK: lambda b: len(b) == 32,
    K_CC: lambda n: 1 <= n <= 999,
    K_LINE: lambda n: n <= 10,
    K_KIND: lambda n: n <= 6,
    K_VERDICT: lambda n: n <= 3,  # 3 (protected) only in version 2, checked after the pass
    K_CHANNEL: lambda n: n <= 4,
    K_BRAND: _brand_ok,
    K_CONFIDENCE: lambda n: n <= 100,
    K_COUNT: lambda n: 1 <= n <= U32_MAX,
    K_FIRST_SEEN: lambda n: n <= MAX_TIME,
    K_LAST_SEEN: lambda n: n <= MAX_TIME,
    K_EXPIRES: lambda n: n <= MAX_TIME,
    K_SIG: lambda b: len(b) == 64,
}


# ---------------------------------------------------------------------------
# §5 Canonical encoding
# ---------------------------------------------------------------------------

def _head(major: int, n: int) -> bytes:
    """§5 rule 3: shortest argument form for a major type and argument."""
    mt = major << 5
    if n < 24:
        return bytes([mt | n])
    if n < 2**8:
        return bytes([mt | 24]) + n.to_bytes(1, "big")
    if n < 2**16:
        return bytes([mt | 25]) + n.to_bytes(2, "big")
    if n < 2**32:
        return bytes([mt | 26]) + n.to_bytes(4, "big")
    if n < 2**64:
        return bytes([mt | 27]) + n.to_bytes(8, "big")
    raise ValueError("integer too large for CBOR")


def _encode_value(kind: str, value) -> bytes:
    if kind == "uint":
        return _head(0, value)
    if kind == "bstr":  # §5 rule 4
        return _head(2, len(value)) + value
    if kind == "tstr":
        data = value.encode("utf-8") if isinstance(value, str) else value
        return _head(3, len(data)) + data
    if kind == "links":  # §13.2: definite array of bstr entries, as given
        return _head(4, len(value)) + b"".join(_head(2, len(e)) + e for e in value)
    raise ValueError(kind)


def encode_record(fields: dict, with_sig: bool = True) -> bytes:
    """§5: one definite map, keys ascending, shortest forms.

    `fields` maps key -> value (int, bytes, or str/bytes for tstr).
    Absent optional keys are simply missing. with_sig=False gives the body.
    """
    keys = sorted(k for k in fields if with_sig or k != K_SIG)
    out = bytearray(_head(5, len(keys)))
    for k in keys:
        out += _head(0, k)
        out += _encode_value(FIELD_TYPE[k], fields[k])
    return bytes(out)


# ---------------------------------------------------------------------------
# §6 Decoding
# ---------------------------------------------------------------------------

MAX_RECORD = 1024
# §6 step 2: nesting depth ≤ 256.
MAX_DEPTH = 256


class DecodeError(Exception):
    """§6 rejection; .code is one of the §6 table's error codes."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


class _Malformed(Exception):
    pass


_BREAK = object()  # sentinel returned for the 0xff "break" stop code


class _Reader:
    """Generic well-formedness decoder (RFC 8949 §3, Appendix C).

    Produces tagged tuples:
      ("uint", n) ("nint", n) ("bstr", bytes) ("tstr", bytes)
      ("array", [items]) ("map", [(k, v), ...]) ("tag", n, item)
      ("simple", n) ("float", raw_bytes)
    Non-canonical but well-formed forms (long integers, indefinite lengths)
    are accepted here, as §6 allows; step 10 rejects them.
    """

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise _Malformed("truncated")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def _argument(self, ai: int) -> int | None:
        """Argument of a head; None for indefinite length (ai 31)."""
        if ai < 24:
            return ai
        if ai == 24:
            return self._take(1)[0]
        if ai == 25:
            return int.from_bytes(self._take(2), "big")
        if ai == 26:
            return int.from_bytes(self._take(4), "big")
        if ai == 27:
            return int.from_bytes(self._take(8), "big")
        if ai == 31:
            return None
        raise _Malformed(f"reserved additional information {ai}")

    def item(self, depth: int = 0, allow_break: bool = False):
        if depth > MAX_DEPTH:
            raise _Malformed("nesting too deep")
        ib = self._take(1)[0]
        major, ai = ib >> 5, ib & 0x1F

        if major == 7:
            if ai == 31:
                if allow_break:
                    return _BREAK
                raise _Malformed("break outside indefinite-length item")
            if ai < 24:
                return ("simple", ai)
            if ai == 24:
                v = self._take(1)[0]
                if v < 32:  # RFC 8949 §3.3: not well-formed
                    raise _Malformed("two-byte simple value < 32")
                return ("simple", v)
            if ai in (25, 26, 27):
                return ("float", self._take(1 << (ai - 24)))
            raise _Malformed(f"reserved additional information {ai}")

        arg = self._argument(ai)
        if major == 0 or major == 1 or major == 6:
            if arg is None:
                raise _Malformed("indefinite length on integer or tag")
            if major == 0:
                return ("uint", arg)
            if major == 1:
                return ("nint", arg)
            return ("tag", arg, self.item(depth + 1))

        if major in (2, 3):
            kind = "bstr" if major == 2 else "tstr"
            if arg is not None:
                return (kind, self._take(arg))
            # Indefinite-length string: definite chunks of the same major type.
            chunks = []
            while True:
                cb = self._take(1)[0]
                if cb == 0xFF:
                    return (kind, b"".join(chunks))
                if cb >> 5 != major:
                    raise _Malformed("bad chunk in indefinite-length string")
                n = self._argument(cb & 0x1F)
                if n is None:
                    raise _Malformed("nested indefinite-length chunk")
                chunks.append(self._take(n))

        if major == 4:
            items = []
            if arg is None:
                while (x := self.item(depth + 1, allow_break=True)) is not _BREAK:
                    items.append(x)
            else:
                if arg > len(self.data) - self.pos:  # each item >= 1 byte
                    raise _Malformed("truncated")
                items = [self.item(depth + 1) for _ in range(arg)]
            return ("array", items)

        # major == 5
        pairs = []
        if arg is None:
            while (k := self.item(depth + 1, allow_break=True)) is not _BREAK:
                pairs.append((k, self.item(depth + 1)))
        else:
            if 2 * arg > len(self.data) - self.pos:
                raise _Malformed("truncated")
            for _ in range(arg):
                k = self.item(depth + 1)
                pairs.append((k, self.item(depth + 1)))
        return ("map", pairs)


def decode_record(data: bytes) -> dict:
    """§6: decode and fully validate a wire record.

    Returns {key: python value} (tstr values as bytes) or raises DecodeError
    with the code of the first failing step.
    """
    # Step 1: size, before parsing anything.
    if len(data) > MAX_RECORD:
        raise DecodeError("oversize", f"{len(data)} bytes")

    # Step 2: one well-formed data item.
    reader = _Reader(data)
    try:
        top = reader.item()
    except _Malformed as e:
        raise DecodeError("malformed", str(e)) from None

    # Step 3: nothing after it.
    if reader.pos != len(data):
        raise DecodeError("trailing_bytes", f"{len(data) - reader.pos} bytes")

    # Step 4: a map whose keys are all unsigned integers.
    if top[0] != "map":
        raise DecodeError("not_a_map", top[0])
    for k, _ in top[1]:
        if k[0] != "uint":
            raise DecodeError("not_a_map", f"key of type {k[0]}")

    # Step 5: no key 0-19 twice (§13.2).
    raw: dict[int, tuple] = {}
    for (_, key), value in top[1]:
        if key <= K_ROLE and key in raw:
            raise DecodeError("duplicate_key", str(key))
        raw.setdefault(key, value)

    # Step 6: version 1 or 2 (before unknown keys, so a future version is a
    # version mismatch).
    v = raw.get(K_V)
    if v is None or v[0] != "uint" or v[1] not in (1, 2):
        raise DecodeError("unsupported_version", repr(v))
    version = v[1]

    # Step 7: no key above 17 (version 1) or 19 (version 2).
    last = K_SIG if version == 1 else K_ROLE
    for key in raw:
        if key > last:
            raise DecodeError("unknown_key", str(key))

    # Steps 8-9: in key order, for each key: presence, type, range.
    fields: dict[int, object] = {K_V: version}
    for key in range(K_NETWORK, K_SIG + 1):
        item = raw.get(key)
        if item is None:
            if key in OPTIONAL_KEYS:
                continue
            raise DecodeError("missing_field", f"key {key}")
        if item[0] != FIELD_TYPE[key]:
            raise DecodeError("invalid_field", f"key {key}: type {item[0]}")
        if not FIELD_RANGE[key](item[1]):
            raise DecodeError("invalid_field", f"key {key}: out of range")
        fields[key] = item[1]
    # ... then the cross-field rules, then seq >= 1.
    if not fields[K_FIRST_SEEN] <= fields[K_LAST_SEEN]:
        raise DecodeError("invalid_field", "first_seen > last_seen")
    if K_EXPIRES in fields and not fields[K_LAST_SEEN] < fields[K_EXPIRES]:
        raise DecodeError("invalid_field", "expires <= last_seen")
    if fields[K_SEQ] < 1:
        raise DecodeError("invalid_field", "seq 0")
    # §13.2: key 18 of version 2.
    if K_LINKS in raw:
        fields[K_LINKS] = _links_field(raw[K_LINKS])
    # §13.5: key 19, the role of a protected number, exactly with verdict 3.
    if K_ROLE in raw:
        role = raw[K_ROLE]
        if role[0] != "uint" or role[1] > 1:
            raise DecodeError("invalid_field", "key 19: not 0 or 1")
        fields[K_ROLE] = role[1]
    if (fields[K_VERDICT] == 3) != (K_ROLE in fields):
        raise DecodeError("invalid_field", "verdict protected and role go together")

    # Step 10: canonical re-encoding must reproduce the input exactly.
    if encode_record(fields) != data:
        raise DecodeError("non_canonical")

    # Step 11: origin is a valid public key (§7 condition 1).
    if decode_point_strict(fields[K_ORIGIN]) is None:
        raise DecodeError("invalid_origin")

    # Step 12: signature (§7 conditions 2-4) over tag || body.
    body = encode_record(fields, with_sig=False)
    if not verify_strict(fields[K_ORIGIN], SIG_TAG + body, fields[K_SIG]):
        raise DecodeError("bad_signature")
    return fields


LINK_LENGTHS = {0: 33, 1: 33, 2: 9, 3: 33, 4: 33}  # §13.2, by kind code


def _links_field(item) -> list[bytes]:
    """§13.2 key 18: 1-8 bstr link entries of known kinds and lengths, at
    most one block1000, distinct. Returned in bytewise order: an array in
    another order then fails step 10."""
    if item[0] != "array" or not 1 <= len(item[1]) <= 8:
        raise DecodeError("invalid_field", "key 18: not an array of 1-8 entries")
    entries = []
    for entry in item[1]:
        if entry[0] != "bstr":
            raise DecodeError("invalid_field", "key 18: entry not a bstr")
        data = entry[1]
        if not data or LINK_LENGTHS.get(data[0]) != len(data):
            raise DecodeError("invalid_field", "key 18: unknown kind or length")
        entries.append(data)
    entries.sort()
    if any(a == b for a, b in zip(entries, entries[1:])):
        raise DecodeError("invalid_field", "key 18: repeated entry")
    if sum(1 for e in entries if e[0] == 4) > 1:
        raise DecodeError("invalid_field", "key 18: two block1000 entries")
    return entries


# ---------------------------------------------------------------------------
# §13.1 Link tokens
# ---------------------------------------------------------------------------

URL_DOMAIN_TAG = b"sightline/url-domain/v1"
SENDER_TAG = b"sightline/sender/v1"
CAMPAIGN_TAG = b"sightline/campaign/v1"
BLOCK1000_TAG = b"sightline/block1000/v1"
SCRIPT_TAG = b"sightline/script/v1"
LINK_CODES = {"url_domain": 0, "sender": 1, "script": 2, "campaign": 3, "block1000": 4}


def _mac(hash_key: bytes, tag: bytes, text: str) -> bytes:
    return hmac.new(hash_key, tag + text.encode("utf-8"), hashlib.sha256).digest()


def _is_control(c: str) -> bool:
    return unicodedata.category(c) == "Cc" and c not in _WHITE_SPACE


def _collapse(text: str) -> str:
    """Runs of White_Space become one space (the text is already trimmed)."""
    out, gap = [], False
    for c in text:
        if c in _WHITE_SPACE:
            gap = True
            continue
        if gap and out:
            out.append(" ")
        gap = False
        out.append(c)
    return "".join(out)


def normalize_sender(text: str) -> str:
    """§13.1 sender. Email domains here are ASCII (UTS #46 is not
    reimplemented): lower-cased as its ASCII case mapping does."""
    text = _trim(text)
    if not text or any(_is_control(c) for c in text):
        raise ValueError("sender")
    if "@" in text:
        local, domain = text.rsplit("@", 1)
        if not local or not domain.isascii() or not domain:
            raise ValueError("email")
        return local.lower() + "@" + domain.lower()
    compact = "".join(c for c in text if c not in " -.()")
    digits = compact[1:] if compact.startswith("+") else compact
    if digits and all("0" <= c <= "9" for c in digits):
        return compact
    return _collapse(text.lower())


def normalize_campaign(text: str) -> str:
    """§13.1 tag."""
    text = _trim(text)
    if not text or any(_is_control(c) for c in text):
        raise ValueError("campaign")
    tag = _collapse(text.lower())
    if len(tag.encode("utf-8")) > 64:
        raise ValueError("campaign too long")
    return tag


def script_words(text: str) -> list[str]:
    """§13.1 script, steps 1-4."""
    words: list[str] = []
    chunk_list, current = [], []
    for c in text:  # step 1: split at White_Space
        if c in _WHITE_SPACE:
            if current:
                chunk_list.append("".join(current))
            current = []
        else:
            current.append(c)
    if current:
        chunk_list.append("".join(current))
    for chunk in chunk_list:
        lower = chunk.lower()  # step 2
        if "://" in lower or lower.startswith("www."):
            words.append("url")
            continue
        word: list[str] = []
        for c in lower + " ":  # step 3: split at ASCII non-alphanumerics
            if c.isascii() and not (c.isascii() and c.isalnum()):
                if word:
                    words.append(_zero_digit_runs("".join(word)))
                word = []
            else:
                word.append(c)
    return words


def _zero_digit_runs(word: str) -> str:
    """§13.1 script step 4."""
    out, in_digits = [], False
    for c in word:
        if "0" <= c <= "9":
            if not in_digits:
                out.append("0")
            in_digits = True
        else:
            out.append(c)
            in_digits = False
    return "".join(out)


def script_fingerprint(hash_key: bytes, text: str) -> int:
    words = script_words(text)
    if not words:
        raise ValueError("no words")
    if len(words) < 3:
        shingles = {" ".join(words)}
    else:
        shingles = {" ".join(words[i:i + 3]) for i in range(len(words) - 2)}
    votes = [0] * 64
    for shingle in shingles:
        h = int.from_bytes(_mac(hash_key, SCRIPT_TAG, shingle)[:8], "big")
        for bit in range(64):
            votes[bit] += 1 if h >> bit & 1 else -1
    return sum(1 << bit for bit in range(64) if votes[bit] > 0)


def _host_of(url: str) -> str:
    """The lower-cased host of an ASCII URL (enough for the vectors)."""
    url = _trim(url)
    if "://" not in url:
        url = "http://" + url
    host = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    host = host.rsplit("@", 1)[-1].split(":", 1)[0]
    return host.lower().rstrip(".")


def expected_links(hash_key: bytes, e164: str, given: dict, notes: list[str]) -> list[dict]:
    """§13.1: every link entry the user's input gives, as
    {kind, input, entry}, in record order (bytewise by entry)."""
    out = []
    for url, domain in given.get("_domains", []):
        host = _host_of(url)
        if not (host == domain or host.endswith("." + domain)):
            raise Mismatch(f"url_domain {domain!r} is not a domain of {url!r}")
        out.append(("url_domain", domain, _mac(hash_key, URL_DOMAIN_TAG, domain)))
    if given.get("sender") is not None:
        sender = normalize_sender(given["sender"])
        out.append(("sender", sender, _mac(hash_key, SENDER_TAG, sender)))
    if given.get("campaign") is not None:
        tag = normalize_campaign(given["campaign"])
        out.append(("campaign", tag, _mac(hash_key, CAMPAIGN_TAG, tag)))
    if given.get("message") is not None:
        fp = script_fingerprint(hash_key, given["message"])
        out.append(("script", script_words(given["message"]), fp.to_bytes(8, "big")))
    if given.get("block1000"):
        prefix = e164[:-3]
        out.append(("block1000", prefix, _mac(hash_key, BLOCK1000_TAG, prefix)))
    entries = {}
    for kind, text, token in out:
        entries[bytes([LINK_CODES[kind]]) + token] = (kind, text)
    if given.get("_domains"):
        notes.append("registrable domains taken from the vector (no Public Suffix List here)")
    return [{"kind": k, "input": t, "entry": e.hex()} for e, (k, t) in sorted(entries.items())]


# ---------------------------------------------------------------------------
# §7 Signatures: Ed25519 (RFC 8032 §5.1), pure Python
# ---------------------------------------------------------------------------

SIG_TAG = b"sightline/sighting/v1"  # 21 bytes
assert len(SIG_TAG) == 21

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

# Points in extended homogeneous coordinates (X, Y, Z, T), x=X/Z, y=Y/Z, xy=T/Z.
IDENTITY = (0, 1, 1, 0)


def _add(p1, p2):
    """RFC 8032 §5.1.4 addition (complete for edwards25519)."""
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * D * t1 * t2 % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _neg(pt):
    x, y, z, t = pt
    return (-x % P, y, z, -t % P)


def _mul(s: int, pt):
    """Double-and-add scalar multiplication."""
    q = IDENTITY
    while s > 0:
        if s & 1:
            q = _add(q, pt)
        pt = _add(pt, pt)
        s >>= 1
    return q


def _is_identity(pt) -> bool:
    x, y, z, _ = pt
    return x % P == 0 and (y - z) % P == 0


def _encode_point(pt) -> bytes:
    """RFC 8032 §5.1.2: y little-endian, bit 255 = sign (low bit) of x."""
    x, y, z, _ = pt
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _decode_point(s: bytes):
    """RFC 8032 §5.1.3 decoding; None if not a curve point / non-canonical y."""
    if len(s) != 32:
        return None
    n = int.from_bytes(s, "little")
    sign = n >> 255
    y = n & ((1 << 255) - 1)
    if y >= P:  # non-canonical y
        return None
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    vx2 = v * x * x % P
    if vx2 == u:
        pass
    elif vx2 == (-u) % P:
        x = x * SQRT_M1 % P
    else:
        return None  # not on the curve
    if x == 0 and sign == 1:
        return None  # "negative zero": would not re-encode to the same bytes
    if (x & 1) != sign:
        x = P - x
    return (x, y, 1, x * y % P)


BASE = _decode_point((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))


def decode_point_strict(s: bytes):
    """§7 condition 1/2: decodes, canonical (y < p and re-encodes to the
    same bytes), not of small order ([8]A != identity), and of prime order
    ([L]A == identity: no small-order component)."""
    pt = _decode_point(s)
    if pt is None or _encode_point(pt) != s:
        return None
    if _is_identity(_mul(8, pt)):
        return None
    if not _is_identity(_mul(L, pt)):
        return None
    return pt


def _sha512_int(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def _expand_seed(seed: bytes):
    h = hashlib.sha512(seed).digest()
    a = bytearray(h[:32])
    a[0] &= 248
    a[31] &= 127
    a[31] |= 64
    return int.from_bytes(a, "little"), h[32:]


def public_key(seed: bytes) -> bytes:
    """RFC 8032 §5.1.5."""
    a, _ = _expand_seed(seed)
    return _encode_point(_mul(a, BASE))


def sign(seed: bytes, msg: bytes) -> bytes:
    """RFC 8032 §5.1.6, pure Ed25519."""
    a, prefix = _expand_seed(seed)
    pub = _encode_point(_mul(a, BASE))
    r = _sha512_int(prefix, msg) % L
    rb = _encode_point(_mul(r, BASE))
    k = _sha512_int(rb, pub, msg) % L
    s = (r + k * a) % L
    return rb + s.to_bytes(32, "little")


def verify_strict(pub: bytes, msg: bytes, sig: bytes) -> bool:
    """§7 strict verification, conditions 1-4 (cofactorless equation)."""
    if len(sig) != 64:
        return False
    a_pt = decode_point_strict(pub)          # condition 1
    if a_pt is None:
        return False
    rb = sig[:32]
    if decode_point_strict(rb) is None:      # condition 2
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= L:                               # condition 3
        return False
    k = _sha512_int(rb, pub, msg) % L        # condition 4
    check = _add(_mul(s, BASE), _neg(_mul(k, a_pt)))
    return _encode_point(check) == rb


# ---------------------------------------------------------------------------
# §9 Test vectors
# ---------------------------------------------------------------------------

class Mismatch(Exception):
    pass


def _expect(what: str, got, want):
    if got != want:
        g = got.hex() if isinstance(got, bytes) else got
        w = want.hex() if isinstance(want, bytes) else want
        raise Mismatch(f"{what}: got {g!r}, expected {w!r}")


def check_valid(vec: dict, notes: list[str]) -> None:
    inp, exp = vec["input"], vec["expected"]
    hash_key = bytes.fromhex(inp["hash_key"])
    seed = bytes.fromhex(inp["signing_seed"])
    sighting = inp["sighting"]

    # §2: normalize. Region/line are metadata: a difference is reported,
    # and the record is still built from expected.cc / expected.line.
    norm = normalize(inp["number"], inp["region"])
    _expect("e164", norm["e164"], exp["e164"])
    _expect("cc", norm["cc"], exp["cc"])
    if norm["region"] != exp["region"]:
        notes.append(f"metadata: region {norm['region']} (expected {exp['region']})")
    if norm["line"] != exp["line"]:
        notes.append(f"metadata: line {norm['line']} (expected {exp['line']})")

    # §3: hashes.
    e164 = exp["e164"]
    _expect("block_input", block_input(e164), exp["block_input"])
    nh, bh = number_hash(hash_key, e164), block_hash(hash_key, e164)
    _expect("number_hash", nh, bytes.fromhex(exp["number_hash"]))
    _expect("block_hash", bh, bytes.fromhex(exp["block_hash"]))

    # §7: public key from seed.
    origin = public_key(seed)
    _expect("origin", origin, bytes.fromhex(exp["origin"]))

    # §4/§5: body. JSON null = field omitted.
    fields = {
        K_V: 1,
        K_NETWORK: sighting["network"],
        K_ORIGIN: origin,
        K_SEQ: sighting["seq"],
        K_NUMBER: nh,
        K_BLOCK: bh,
        K_CC: exp["cc"],
        K_LINE: LINE_CODES[exp["line"]],
        K_KIND: KIND_CODES[sighting["kind"]],
        K_VERDICT: VERDICT_CODES[sighting["verdict"]],
        K_CHANNEL: CHANNEL_CODES[sighting["channel"]],
        K_CONFIDENCE: sighting["confidence"],
        K_COUNT: sighting["count"],
        K_FIRST_SEEN: sighting["first_seen"],
        K_LAST_SEEN: sighting["last_seen"],
    }
    if sighting.get("brand") is not None:
        fields[K_BRAND] = sighting["brand"]
    if sighting.get("expires") is not None:
        fields[K_EXPIRES] = sighting["expires"]
    if sighting.get("role") is not None:
        fields[K_ROLE] = ROLE_CODES[sighting["role"]]
    # §13: version 2 when the input carries links.
    if sighting.get("links") is not None:
        fields[K_V] = 2
        given = dict(sighting["links"])
        domains = [l["input"] for l in exp["links"] if l["kind"] == "url_domain"]
        hosts = given["urls"]
        # Pair each URL with the vector's domain of it (same host suffix).
        given["_domains"] = [
            (url, next(d for d in domains if _host_of(url) == d or _host_of(url).endswith("." + d)))
            for url in hosts
        ]
        links = expected_links(hash_key, e164, given, notes)
        # Two URLs of one domain give one link.
        _expect("links", links, exp["links"])
        if links:
            fields[K_LINKS] = [bytes.fromhex(l["entry"]) for l in links]
    elif exp.get("links") is not None:
        raise Mismatch("links expected from an input without links")
    body = encode_record(fields, with_sig=False)
    _expect("body", body, bytes.fromhex(exp["body"]))

    # §7 sign, §5 wire record, §8 id.
    fields[K_SIG] = sign(seed, SIG_TAG + body)
    signed = encode_record(fields)
    _expect("signed", signed, bytes.fromhex(exp["signed"]))
    _expect("id", hashlib.sha256(signed).digest(), bytes.fromhex(exp["id"]))

    # §6: our own decoder must accept it and give back the same fields.
    try:
        decoded = decode_record(bytes.fromhex(exp["signed"]))
    except DecodeError as e:
        raise Mismatch(f"decoder rejected the valid record: {e}") from None
    want = {k: (v.encode("utf-8") if isinstance(v, str) else v) for k, v in fields.items()}
    _expect("decoded fields", decoded, want)


def check_invalid(vec: dict) -> None:
    try:
        decode_record(bytes.fromhex(vec["bytes"]))
    except DecodeError as e:
        _expect("error code", e.code, vec["error"])
        return
    raise Mismatch(f"accepted; expected error {vec['error']!r}")


DEFAULT_SEEDS = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "seeds", "sync_decode"
)


def _tstr(item) -> str | None:
    return item[1].decode() if item[0] == "tstr" else None


def _struct(item, fields: dict) -> dict:
    """A CBOR map with exactly these text keys; values checked by `fields`."""
    if item[0] != "map":
        raise Mismatch(f"expected a map, got {item[0]}")
    got = {_tstr(k): v for k, v in item[1]}
    if set(got) != set(fields):
        raise Mismatch(f"keys {sorted(got)} != {sorted(fields)}")
    for key, check in fields.items():
        check(got[key])
    return got


def _variant(item, name: str):
    """serde's externally tagged enum variant: a one-entry map."""
    if item[0] != "map" or len(item[1]) != 1 or _tstr(item[1][0][0]) != name:
        raise Mismatch(f"expected the variant {name}")
    return item[1][0][1]


def _bytes32_array(item) -> bytes:
    if item[0] != "array" or len(item[1]) != 32 or any(
        x[0] != "uint" or x[1] > 255 for x in item[1]
    ):
        raise Mismatch("expected an array of 32 uints")
    return bytes(x[1] for x in item[1])


def _uint(item) -> int:
    if item[0] != "uint":
        raise Mismatch("expected a uint")
    return item[1]


def _bstr(item) -> bytes:
    if item[0] != "bstr":
        raise Mismatch("expected a byte string")
    return item[1]


def _array_of(check):
    def inner(item):
        if item[0] != "array":
            raise Mismatch("expected an array")
        return [check(x) for x in item[1]]
    return inner


def item_id(seq: int, record_id: bytes) -> bytes:
    """SPEC §11.2: seq (8 bytes big-endian) || the first 24 bytes of the id."""
    return seq.to_bytes(8, "big") + record_id[:24]


def check_catchup_v2(seed_dir: str) -> tuple[int, int]:
    """SPEC §11.2's message shapes, read independently from the seeds the
    reference node's types wrote (protocol/tests/fuzz_seeds.rs)."""
    summary = {"origin": _bytes32_array, "count": _uint, "max_seq": _uint,
               "digest": _bytes32_array}

    def fetch(v):
        got = _struct(v, {"origin": _bytes32_array, "items": _array_of(_bstr)})
        items = [x[1] for x in got["items"][1]]
        _expect("fetch item", items, [item_id(9, bytes([5]) * 32)])

    def reconcile_request(v):
        got = _struct(v, {"origin": _bytes32_array, "message": _bstr})
        _expect("negentropy version byte", got["message"][1][:1], b"\x61")

    checks = {
        "v2-request-summary": lambda i: _expect("Summary", _tstr(i), "Summary"),
        "v2-request-reconcile": lambda i: reconcile_request(_variant(i, "Reconcile")),
        "v2-request-fetch": lambda i: fetch(_variant(i, "Fetch")),
        "v2-response-summary": lambda i: _array_of(lambda e: _struct(e, summary))(
            _variant(i, "Summary")),
        "v2-response-reconcile": lambda i: _struct(
            _variant(i, "Reconcile"), {"message": _bstr}),
        "v2-response-records": lambda i: _struct(
            _variant(i, "Records"), {"records": _array_of(_bstr)}),
        "v2-response-busy": lambda i: _expect("Busy", _tstr(i), "Busy"),
        "v2-response-invalid": lambda i: _expect("Invalid", _tstr(i), "Invalid"),
    }
    passed = failed = 0
    for name, check in checks.items():
        try:
            with open(os.path.join(seed_dir, name), "rb") as f:
                data = f.read()
            reader = _Reader(data)
            item = reader.item()
            if reader.pos != len(data):
                raise Mismatch("trailing bytes")
            check(item)
        except (Mismatch, _Malformed, OSError) as e:
            failed += 1
            print(f"catchup/{name}: FAIL {e}")
            continue
        passed += 1
        print(f"catchup/{name}: ok")
    return passed, failed


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else DEFAULT_VECTORS
    with open(path, encoding="utf-8") as f:
        suite = json.load(f)

    passed = failed = 0
    for vec in suite["vectors"]:
        notes: list[str] = []
        try:
            check_valid(vec, notes)
        except (Mismatch, NormalizeError) as e:
            failed += 1
            print(f"{vec['name']}: FAIL {type(e).__name__}: {e}")
            continue
        passed += 1
        print(f"{vec['name']}: ok" + (f" ({'; '.join(notes)})" if notes else ""))
    for vec in suite["invalid"]:
        try:
            check_invalid(vec)
        except Mismatch as e:
            failed += 1
            print(f"invalid/{vec['name']}: FAIL {e}")
            continue
        passed += 1
        print(f"invalid/{vec['name']}: ok ({vec['error']})")

    for vec in suite.get("numbers", []):
        inp, exp = vec["input"], vec["expected"]
        try:
            got = normalize(inp["number"], inp["region"], inp["vanity"])
        except NormalizeError as e:
            got = {"error": e.code}
        if got != exp:
            failed += 1
            print(f"numbers/{vec['name']}: FAIL got {got}, expected {exp}")
            continue
        passed += 1
        print(f"numbers/{vec['name']}: ok ({exp})")

    ok, bad = check_catchup_v2(DEFAULT_SEEDS)
    passed, failed = passed + ok, failed + bad

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
