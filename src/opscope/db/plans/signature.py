"""Function names as a user writes them in the config: `schema.name` (every overload) or
`schema.name(type, ...)` (one), with SQL's identifier rules (unquoted names fold to lower
case, "Quoted" ones keep theirs)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_ENTRY = re.compile(rf"\s*({_IDENT})\s*\.\s*({_IDENT})\s*(?:\((.*)\))?\s*")
# a type as `to_regtype` reads it: words, a schema, quotes, a typmod, array brackets
_TYPE = re.compile(
    rf"\s*{_IDENT}(?:\s*\.\s*{_IDENT})?(?:\s+{_IDENT})*\s*(?:\(\s*\d+\s*(?:,\s*\d+\s*)?\))?"
    r"(?:\s*\[\s*\d*\s*\])*\s*"
)


@dataclass(frozen=True)
class FunctionEntry:
    text: str
    schema: str
    name: str
    #: argument types as written, None for every overload
    args: tuple[str, ...] | None


def _ident(token: str) -> str:
    if token.startswith('"'):
        return token[1:-1].replace('""', '"')
    return token.lower()


def _split_args(text: str) -> list[str]:
    """Comma-separated at depth 0 (numeric(10, 2) is one type)."""
    parts: list[str] = []
    depth = 0
    current = ""
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def parse_function_entry(text: str) -> FunctionEntry:
    """Raises ValueError with a message for the config error."""
    m = _ENTRY.fullmatch(text)
    if not m:
        raise ValueError(
            f"{text!r}: expected schema.name or schema.name(argument types), "
            "e.g. public.price_with_tax(numeric)"
        )
    schema, name, args = _ident(m.group(1)), _ident(m.group(2)), m.group(3)
    if args is None:
        return FunctionEntry(text, schema, name, None)
    types = [] if not args.strip() else _split_args(args)
    for t in types:
        if not _TYPE.fullmatch(t):
            raise ValueError(f"{text!r}: cannot read the argument type {t.strip()!r}")
    return FunctionEntry(text, schema, name, tuple(t.strip() for t in types))
