"""Statement normalization: literals become `$n`, IN-lists collapse, as pg_stat_statements does.

Grouping uses pglast's fingerprint (libpg_query's, from PostgreSQL's own parser): it ignores
literal values, whitespace, letter case and the length of IN-lists, which is how
pg_stat_statements' queryid sees two executions as the same statement. The text shown for a
group is PostgreSQL's normalized form (`pg_query_normalize`, the algorithm
pg_stat_statements uses) with IN-lists collapsed the way PostgreSQL 18 prints them.

Text the parser rejects (a truncated statement, another product's dialect) falls back to a
regular-expression normalizer so that it still groups sensibly instead of being dropped.

Most texts of a busy log are new to the exact-text cache (each carries its own literals),
and PostgreSQL's parser is the largest cost of reading such a log. Texts that differ only
in the values of their digits mostly normalize alike, so a second cache is keyed by the
text with every digit made `0` (its *shape*, cheap to compute on bytes). A shape is only
trusted once its first text showed that each of its digits lies in a constant the
normalizer replaces: the text with every digit changed (and so every literal value) must
normalize to the very same result. Digits anywhere else — a table name, a comment, an
`ORDER BY 2`, a `$1` parameter, a type modifier — change that result, and such a shape is
never used: its texts go to the parser each time. Texts with a backslash or `&` (escapes in
E'' and U&'' strings, whose digits the scanner itself reads) never use the shape cache.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from typing import Final

import pglast.parser

#: grouping key and display text for one statement text
Normalized = tuple[str, str]

_CACHE_LIMIT: Final = 50_000
#: texts longer than this are not cached (they rarely repeat exactly)
_CACHE_TEXT: Final = 2048
#: characters (keys and values) each cache holds at most before it is emptied
_CACHE_CHARS: Final = 16 << 20
# The caches are Final (emptied in place, never rebound): compiled, each is a static
# reference, not a lookup in the module's globals on every call.
#: characters held by normalize_cache and by _by_normalized
_held: Final = [0, 0]
#: raw text -> normalize(text)
normalize_cache: Final[dict[str, Normalized]] = {}
_cache: Final = normalize_cache
_by_normalized: Final[dict[str, Normalized]] = {}
#: shape -> the result of every text of that shape, or _UNTRUSTED where its digits are not
#: all literal values (such texts are normalized one by one); characters held in _held[2]
_UNTRUSTED: Final[Normalized] = ("", "")
_by_shape: Final[dict[bytes, Normalized]] = {}
_held.append(0)
#: every ASCII digit (never part of a multi-byte UTF-8 character) -> "0"
_SHAPE: Final = bytes.maketrans(b"123456789", b"000000000")
#: every digit changed, for the test that a shape's digits are all literal values
_OTHER_DIGITS: Final = str.maketrans("0123456789", "1234567890")

# The loops over list items and string characters are possessive (`*+`, `++`) where giving
# back could never lead to a match: the regex engine then keeps no backtracking state per
# item or character, which for a string literal of a megabyte was 250 MB.
_IN_LIST: Final = re.compile(r"(?i)(\bIN\s*\(|\bARRAY\s*\[)\s*\$\d+(?:\s*,\s*\$\d+)++\s*([)\]])")
_PARAM: Final = re.compile(r"\$\d+")
_LITERAL: Final = re.compile(
    r"""(?xs)
      (?P<dollar>\$(?P<tag>[A-Za-z_]\w*)?\$.*?\$(?P=tag)\$)   # dollar-quoted string
    | (?P<ident>"[^"]*(?:""[^"]*)*")                          # quoted identifier: kept
    | (?P<param>\$\d+)                                        # existing parameter: kept
    | (?P<string>[EeBbXxNn]?'(?:[^'\\]|''|\\.)*+'?)           # string (maybe truncated)
    | (?P<number>(?<![\w$])-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<word>[A-Za-z_]\w*)                                  # keyword or name: kept
    """
)
_SPACE: Final = re.compile(r"\s+")


def collapse_in_lists(normalized: str) -> str:
    """`IN ($1, $2, $3)` -> `IN ($1 /*, ... */)`, the way PostgreSQL 18 shows squashed lists.

    Parameters are then numbered again in order of appearance, so two IN-lists of different
    length show the same text.
    """
    if _IN_LIST.search(normalized) is None:
        return normalized
    collapsed = _IN_LIST.sub(r"\g<1>$0 /*, ... */\g<2>", normalized)
    counter = itertools.count(1)
    return _PARAM.sub(lambda _m: f"${next(counter)}", collapsed)


def regex_normalize(text: str) -> str:
    """Literal-replacing normalizer for text PostgreSQL's parser rejects."""
    highest = max((int(p[1:]) for p in _PARAM.findall(text)), default=0)
    counter = itertools.count(highest + 1)

    def replace(m: re.Match[str]) -> str:
        kind = m.lastgroup
        if kind in ("dollar", "string", "number"):
            return f"${next(counter)}"
        return m.group(0)

    return _LITERAL.sub(replace, text)


def normalize(text: str) -> Normalized:
    """(grouping key, display text) for a statement; cached by the exact text."""
    hit = _cache.get(text)
    if hit is not None:
        return hit
    stripped = text.strip()
    if len(text) > _CACHE_TEXT:
        return _normalize(stripped)
    shape = _shape(stripped)
    found = _by_shape.get(shape) if shape is not None else _UNTRUSTED
    if found is None:
        assert shape is not None
        result = _normalize(stripped)
        _remember_shape(shape, stripped, result)
    elif not found[0]:  # _UNTRUSTED (compiled, tuples keep no identity)
        result = _normalize(stripped)
    else:
        # Not copied into the exact-text cache: a text of literals seldom comes again,
        # and its shape answers as fast as that cache would.
        return found
    size = len(text) + len(result[1])
    if len(_cache) >= _CACHE_LIMIT or _held[0] + size > _CACHE_CHARS:
        # Constant memory: texts full of literals rarely repeat, so forgetting them all
        # costs a few re-normalizations and never an unbounded dictionary.
        _cache.clear()
        _held[0] = 0
    _cache[text] = result
    _held[0] += size
    return result


def _normalize(stripped: str) -> Normalized:
    """normalize() without its caches."""
    try:
        return _by_normalized_text(pglast.parser.normalize(stripped))
    except Exception:  # pglast raises its own ParseError, and others on odd input
        display = regex_normalize(stripped)
        digest = hashlib.blake2b(_SPACE.sub(" ", display.lower()).encode(), digest_size=8)
        return ("t" + digest.hexdigest(), collapse_in_lists(display))


def _shape(stripped: str) -> bytes | None:
    """The text with its digits made 0, or None when the shape cache cannot serve it: no
    digit at all (the exact cache does as well), or an escape the scanner decodes."""
    # Tested on the str: `in` on bytes first tries its operand as an int and formats the
    # TypeError it gets, which cost more than the rest of this function.
    if "\\" in stripped or "&" in stripped:
        return None
    try:
        raw = stripped.encode()
    except UnicodeEncodeError:  # a lone surrogate: no text a server logged
        return None
    shape = raw.translate(_SHAPE)
    if shape == raw and "0" not in stripped:
        return None
    return shape


def _remember_shape(shape: bytes, stripped: str, result: Normalized) -> None:
    """Trust `shape` for every text of it if changing every digit of `stripped` (every
    digit becomes another one) leaves its normalized text as it is."""
    trusted = _UNTRUSTED
    if result[0].startswith("f"):
        try:
            same = pglast.parser.normalize(stripped.translate(_OTHER_DIGITS)) == (
                pglast.parser.normalize(stripped)
            )
        except Exception:
            same = False
        if same:
            trusted = result
    size = len(shape) + len(trusted[1])
    if len(_by_shape) >= _CACHE_LIMIT or _held[2] + size > _CACHE_CHARS:
        _by_shape.clear()
        _held[2] = 0
    _by_shape[shape] = trusted
    _held[2] += size


def _by_normalized_text(normalized: str) -> Normalized:
    """Fingerprint and display of a normalized text. Raw texts that differ only in their
    literals share one normalized text, so this second cache hits where the first missed."""
    hit = _by_normalized.get(normalized)
    if hit is None:
        key = "f" + str(pglast.parser.fingerprint(normalized))
        hit = (key, collapse_in_lists(normalized))
        if len(normalized) > _CACHE_TEXT:
            return hit
        size = len(normalized) + len(hit[1])
        if len(_by_normalized) >= _CACHE_LIMIT or _held[1] + size > _CACHE_CHARS:
            _by_normalized.clear()
            _held[1] = 0
        _by_normalized[normalized] = hit
        _held[1] += size
    return hit
