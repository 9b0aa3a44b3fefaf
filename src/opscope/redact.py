"""Passwords out of everything opscope shows: messages, statements, parameters, DSNs.

One `redact` for every output (terminal, files, the service): what it blanks is written in
SQL role options, libpq conninfo strings and connection URIs, in every quoting PostgreSQL
accepts."""

from __future__ import annotations

import re

# PASSWORD followed by a string in any quoting, cut off or not (an unterminated string
# runs to the end of the text, as the server reads it), or by a parameter. The loops over
# string characters are possessive: no backtracking state per character of a long literal.
_PASSWORD = re.compile(
    r"""(?is)(\bPASSWORD\s+)(?:
        [Ee]'(?:[^'\\]|''|\\.)*+(?:'|\\?\Z)
      | '(?:[^']|'')*+'?
      | \$(?P<tag>[A-Za-z_]\w*)?\$.*?(?:\$(?P=tag)\$|\Z)
      | \$\d+
    )""",
    re.VERBOSE,
)
#: libpq conninfo (dblink, postgres_fdw, subscriptions): password=secret or password='…'
_CONNINFO = re.compile(r"""(?i)(\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|[^\s'",;)]+)""")
#: a connection URI's user:password@
_URI = re.compile(r"""(?i)(\b[a-z][a-z0-9+.\-]*://[^\s:/@'"]*:)[^\s@/'"]+@""")
MASK = "********"
_QUOTED_VALUE = re.compile(r"'(?:[^']|'')*'")


def redact(text: str) -> str:
    """Text with passwords blanked: CREATE/ALTER ROLE … PASSWORD '…' (in any quoting, even
    cut off), conninfo `password=…` and URI `user:…@`, which the server logs verbatim and
    opscope output never shows."""
    if not text or ("assword" not in text and "ASSWORD" not in text and "://" not in text):
        return text
    text = _PASSWORD.sub(rf"\g<1>'{MASK}'", text)
    text = _CONNINFO.sub(rf"\g<1>{MASK}", text)
    return _URI.sub(rf"\g<1>{MASK}@", text)


def password_values(statement: str) -> list[str]:
    """The password values written in `statement`, as they would appear in a message
    quoting part of it (a syntax error's `at or near "…"`)."""
    if not statement or ("assword" not in statement and "ASSWORD" not in statement):
        return []
    found: list[str] = []
    for m in (*_PASSWORD.finditer(statement), *_CONNINFO.finditer(statement)):
        value = m.group(0)[len(m.group(1)) :].strip("'$")
        if m.re is _PASSWORD and m.group("tag"):
            value = value.removeprefix(m.group("tag") + "$").removesuffix("$" + m.group("tag"))
        if value.startswith(("E'", "e'")):
            value = value[2:]
        if len(value) >= 3 and not value.isdigit():
            found.append(value)
    return found


def redact_message(message: str, statement: str) -> str:
    """An error message, with what its statement says is a password blanked wherever the
    message quotes it."""
    for secret in password_values(statement):
        message = message.replace(secret, MASK)
        # a message quotes a cut-off statement up to a point: mask that part too
        message = message.replace(secret[: max(3, len(secret) // 2)], MASK)
    return redact(message)


def redact_parameters(query: str, parameters: str | None) -> str | None:
    """Bind values of a statement that sets a password: every value is blanked."""
    if not parameters or (redact(query) == query and not _PASSWORD.search(query)):
        return parameters
    return _QUOTED_VALUE.sub(f"'{MASK}'", parameters)
