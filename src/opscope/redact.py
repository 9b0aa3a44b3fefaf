"""Passwords out of everything opscope shows: messages, statements, parameters, DSNs.

One `redact` for every output (terminal, files, the service). SQL is read with PostgreSQL's
own parser (pglast): a constant is a secret by its place in the parse tree — a role's
PASSWORD, any option or setting named for a password, every option of a user mapping but
the user name, a subscription's CONNECTION, the connection argument of dblink — or by what
it holds (a conninfo or URI with a password, a statement that sets one, any other text that
names a password). It is blanked at the span the scanner found it in the original text, so
every quoting the server accepts is covered (E'', U&'', dollar quoting, a literal continued
on the next line, comments anywhere). DO blocks and function bodies are code that can build
a password in ways no rule recognises: they are hidden whole.

Text the parser rejects is a statement cut off or in another product's SQL (it starts like
one, or names DO, a function, dblink, a user mapping, a subscription): none of its string
constants is shown, nor what follows a role's PASSWORD, DO or a function's AS. Any other
text (a message, a DSN, a plan) hides the strings that name a password, and conninfo
`password=…` and URI `user:…@`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pglast.parser

MASK = "********"
_QUOTED_MASK = f"'{MASK}'"

#: what follows DO in ON CONFLICT DO NOTHING/UPDATE
_DO_UPSERT = re.compile(r"\s+(?:nothing|update)\b")
_URI_USER = re.compile(r"://[^\s/]*@")
_LETTER_ESCAPE = re.compile(r"\\[0-7xu]")
#: an E'' string with an escape that can spell a letter (octal, \x, \u, \U)
# possessive: the loop cannot take the escape it stops at, and keeps no state per character
_ESCAPES = re.compile(r"(?<![\w$])e'(?:[^'\\]|''|\\[^0-7xu])*+\\[0-7xu]")
#: a value that names a password (not a setting about passwords) or holds a URI's user:…@
_SECRET_VALUE = re.compile(
    r"(?i)pass(?:w(?!ord_(?:encryption|required))|phrase)|pwd|secret|://[^\s/]*@"
)
#: libpq conninfo (dblink, postgres_fdw, subscriptions): password=secret or password='…'
_CONNINFO = re.compile(r"""(?i)(\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|[^\s'",;)]+)""")
#: a connection URI's user:password@
_URI = re.compile(r"""(?i)(\b[a-z][a-z0-9+.\-]*://[^\s:/@'"]*:)[^\s@/'"]+@""")
#: a URI's ?password=… (libpq takes every conninfo keyword as a query parameter)
_URI_PARAMETER = re.compile(r"(?i)([?&][^=&#\s]*password=)[^&#\s]*")
_URI_FORM = re.compile(r"(?is)\s*postgres(?:ql)?://")
#: one `keyword = value` of a libpq conninfo; an unquoted value runs to white space
_CONNINFO_PAIR = re.compile(
    r"""\s*([^\s=]+)\s*=\s*('(?:[^'\\]|\\.)*'|(?!')(?:[^\s\\]|\\.)*)\s*""", re.S
)
_QUOTED_VALUE = re.compile(r"'(?:[^']|'')*(?:'|\Z)")
#: a part of the statement that an error message quotes ("at or near "…"")
_QUOTED_PART = re.compile(r'"([^"\n]+)"')

#: a string constant in text the parser rejects, in any quoting, cut off or not (an
#: unterminated string runs to the end of the text, as the server reads it)
_STRING = re.compile(
    r"""(?isx)
      (?<! [\w$] ) \$ (?P<tag> (?: [^\W\d] \w* )? ) \$ .*? (?: \$ (?P=tag) \$ | \Z )
    | (?<! [\w$] ) e' (?: [^'\\] | '' | \\. )* (?: ' | \\? \Z )
    | (?<! [\w$] ) (?: u& | [nbx] )? ' (?: [^'] | '' )* (?: ' | \Z )
    | ' (?: [^'] | '' )* (?: ' | \Z )
    """
)
#: PASSWORD in text the parser rejects (not a conninfo's password=), or another product's
#: IDENTIFIED BY, and before it in the same statement what makes it a role's or a user
#: mapping's: what follows it is hidden
_PASSWORD_WORD = re.compile(r"(?i)\b(?:password|identified\s+by)\b(?!\s*=)")
_ROLE_WORD = re.compile(r"(?i)\b(?:role|user|group|mapping)\b")
_COMMENTS_FIRST = r"(?:\s+|/\*.*?\*/|--[^\n]*(?:\n|\Z))*"
_ROLE_STATEMENT = re.compile(rf"(?is){_COMMENTS_FIRST}(?:create|alter)\b")
_DO_STATEMENT = re.compile(rf"(?is){_COMMENTS_FIRST}do\b")
_FUNCTION_STATEMENT = re.compile(
    rf"(?is){_COMMENTS_FIRST}create\s+(?:or\s+replace\s+)?(?:function|procedure)\b"
)
_AS_WORD = re.compile(r"(?i)\bas\b")
#: text that starts like a statement (after white space and comments)
_STATEMENT_START = re.compile(
    rf"""(?isx){_COMMENTS_FIRST}(?:select|insert|update|delete|merge|with|values|table
    |create|alter|drop|do|set|reset|grant|revoke|copy|call|execute|prepare|comment|security
    |import|explain|declare|fetch|lock|truncate|vacuum|analyze|reindex|refresh)\b"""
)
_PARAMETER = re.compile(r"\$\d+")
#: the quotes around a string constant's value
_QUOTES = re.compile(
    r"(?is)\A(?:(?:e|n|b|x|u&)?'|\$(?P<tag>[^$]*)\$)(?P<value>.*?)(?:'|\$(?P=tag)\$)?\Z"
)

#: dblink functions, and which of their arguments names the connection
_DBLINK = {"dblink_connect": None, "dblink_connect_u": None, "dblink": 1, "dblink_exec": 1}
#: settings and options whose name says password but whose value is not one
_NOT_SECRET = frozenset(("password_encryption", "password_required"))
_LITERALS = frozenset(("SCONST", "USCONST", "BCONST", "XCONST"))
_COMMENTS = frozenset(("C_COMMENT", "SQL_COMMENT"))
_CACHE_LIMIT = 10_000
#: longer texts are not cached (they rarely repeat exactly)
_CACHE_TEXT = 8192
#: characters (texts and what they show) the cache holds at most before it is emptied
_CACHE_CHARS = 8 << 20

# How a secret place is hidden: the password inside its conninfo, or the constant whole.
_CONNINFO_ONLY, _WHOLE = 1, 2


@dataclass(frozen=True, slots=True)
class _Redacted:
    text: str
    #: what was hidden, as written and as the server reads it
    secrets: tuple[str, ...] = ()
    #: a parameter ($n) stands where a secret goes: its bound value is one
    secret_parameters: bool = False
    #: PostgreSQL's parser accepted the text
    parsed: bool = False


_cache: dict[str, _Redacted] = {}
#: characters held by _cache
_held = [0]
#: short texts known to hold no secret: error messages repeat
_clean: set[str] = set()
_CLEAN_TEXT = 512


def redact(text: str) -> str:
    """Text with every secret blanked (see the module's docstring): what the server logs
    verbatim and opscope output never shows."""
    if not text:
        return text
    found = _redaction(text)
    return text if found is None else found.text


def password_values(statement: str) -> list[str]:
    """What `statement` holds as secrets, as written and as the server reads them: what a
    message quoting part of it (a syntax error's `at or near "…"`) may show."""
    found = _redaction(statement) if statement else None
    return [] if found is None else [s for s in found.secrets if s]


def redact_message(message: str, statement: str) -> str:
    """An error message, with what its statement holds as a secret blanked wherever the
    message quotes it."""
    secrets = password_values(statement)
    if not secrets:
        return redact(message)
    secrets = sorted(set(secrets), key=len, reverse=True)
    for secret in secrets:
        if len(secret) >= 3:
            message = message.replace(secret, MASK)
            # a message quotes a cut-off statement up to a point: mask that part too
            message = message.replace(secret[: max(3, len(secret) // 2)], MASK)
    message = _QUOTED_PART.sub(
        lambda m: f'"{MASK}"' if any(m.group(1) in s for s in secrets) else m.group(0),
        message,
    )
    return redact(message)


def redact_parameters(query: str, parameters: str | None) -> str | None:
    """Bind values (`$1 = '…', $2 = …`) as opscope shows them: all blanked when the statement
    puts one where a secret goes or holds a secret itself, else each value redacted as a
    constant of a statement would be."""
    if not parameters:
        return parameters
    statement = _redaction(query) if query else None
    if statement is not None and (statement.secret_parameters or statement.text != query):
        return _QUOTED_VALUE.sub(_QUOTED_MASK, parameters)
    if not _may_hold(parameters):
        return parameters

    def value(m: re.Match[str]) -> str:
        hidden = _redact_value(m.group(0)[1:].removesuffix("'").replace("''", "'"))
        return m.group(0) if hidden is None else _quote(hidden[0])

    return _mask_text(_QUOTED_VALUE.sub(value, parameters))


def _may_hold(text: str) -> bool:
    """Whether anything in `text` can be a secret: checked before parsing, since log
    analysis redacts every error's message and statement, and most mention none of this."""
    if text in _clean:
        return False
    low = text.lower()
    if (
        "pass" in low
        or "secret" in low
        or "pwd" in low
        or ("://" in low and _URI_USER.search(low) is not None)
        or _names_code(low)
    ):
        return True
    if len(text) <= _CLEAN_TEXT:
        if len(_clean) >= _CACHE_LIMIT:
            _clean.clear()
        _clean.add(text)
    return False


def _mentions_do(low: str) -> bool:
    """The word DO, but for ON CONFLICT DO NOTHING/UPDATE (finds and character tests: a
    regular expression searching for a word costs ten times more on every statement)."""
    upserts = low.count("do nothing") + low.count("do update")
    if upserts and low.count("do") == upserts:
        return False
    end = len(low) - 2
    i = low.find("do")
    while i >= 0:
        before = low[i - 1] if i else " "
        after = low[i + 2] if i < end else " "
        if (
            not (before.isalnum() or before == "_" or before == "$")
            and not (after.isalnum() or after == "_" or after == "$")
            and _DO_UPSERT.match(low, i + 2) is None
        ):
            return True
        i = low.find("do", i + 2)
    return False


def _redaction(text: str) -> _Redacted | None:
    """What `text` shows and hides; None when nothing in it can be a secret."""
    if not _may_hold(text):
        return None
    hit = _cache.get(text)
    if hit is not None:
        return hit
    try:
        tree = json.loads(pglast.parser.parse_sql_json(text))
        tokens = pglast.parser.scan(text)
    except Exception:  # pglast raises its own ParseError, and others on odd input
        result = _unparsed(text)
    else:
        result = _parsed(text, tree, tokens)
    masked = _mask_text(result.text)
    if masked != result.text:
        result = replace(result, text=masked)
    if len(text) <= _CACHE_TEXT:
        size = len(text) + len(result.text)
        if len(_cache) >= _CACHE_LIMIT or _held[0] + size > _CACHE_CHARS:
            _cache.clear()
            _held[0] = 0
        _cache[text] = result
        _held[0] += size
    return result


def _mask_text(text: str) -> str:
    """Conninfo `password=…` and URI `user:…@` anywhere in a text."""
    if "=" in text:
        text = _CONNINFO.sub(rf"\g<1>{MASK}", text)
    if "://" in text:
        text = _URI.sub(rf"\g<1>{MASK}@", text)
    return text


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- text the parser accepts ---------------------------------------------------------------


@dataclass
class _Places:
    """Where the secrets of one parsed text are, found by their role in the parse tree.
    The tree gives byte offsets into the UTF-8 text; `char` turns them into str indices."""

    char: Callable[[int], int]
    #: (char offset of the first token, how many constants from there, how to hide them)
    runs: list[tuple[int, int, int]] = field(default_factory=list)
    #: (char offset of an option's name, how many values, how): values without a location
    after_name: list[tuple[int, int, int]] = field(default_factory=list)
    #: char offset of a string constant -> its value, as the server reads it
    values: dict[int, str] = field(default_factory=dict)
    #: a secret whose place the tree does not give: every constant is hidden
    everything: bool = False
    secret_parameters: bool = False

    def visit(self, node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                self.visit(item)
        elif isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, dict):
                    rule = _RULES.get(key)
                    if rule is not None:
                        rule(self, value)
                    if key == "A_Const" and "sval" in value:
                        where = self.char(value.get("location", 0))
                        self.values[where] = str(value["sval"].get("sval", ""))
                self.visit(value)

    def option(self, elem: dict[str, Any], how: int) -> None:
        """The value of a DefElem (`name value`, `name = value`, `AS 'body'`)."""
        arg = elem.get("arg")
        if not isinstance(arg, dict):
            return
        if not arg.keys() & {"String", "Integer", "Float", "Boolean", "List", "TypeName"}:
            self.expression(arg, how)
            return
        count = len(arg["List"].get("items", [])) if "List" in arg else 1
        where = elem.get("arg_location", 0)
        if where < 0:
            self.after_name.append((self.char(elem.get("location", 0)), count, how))
            return
        start = self.char(where)
        self.runs.append((start, count, how))
        if "String" in arg:
            self.values[start] = str(arg["String"].get("sval", ""))

    def expression(self, node: Any, how: int) -> None:
        """Every constant in an expression, and whether a parameter is one of its parts."""
        if isinstance(node, list):
            for item in node:
                self.expression(item, how)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key == "A_Const" and isinstance(value, dict):
                    self.runs.append((self.char(value.get("location", 0)), 1, how))
                elif key == "ParamRef":
                    self.secret_parameters = True
                self.expression(value, how)

    def connection(self, arg: dict[str, Any]) -> None:
        """dblink's connection argument: a conninfo or a connection's name as one
        constant; built from pieces, all of them are hidden."""
        arg = arg.get("NamedArgExpr", {}).get("arg", arg)
        const = arg.get("A_Const")
        if isinstance(const, dict) and "sval" in const:
            self.runs.append((self.char(const.get("location", 0)), 1, _CONNINFO_ONLY))
        else:
            self.expression(arg, _WHOLE)


def _secret_name(name: str) -> bool:
    low = name.lower()
    return ("pass" in low or "pwd" in low or "secret" in low) and low not in _NOT_SECRET


def _option_rule(places: _Places, node: dict[str, Any]) -> None:
    # CREATE/ALTER ROLE … PASSWORD, FDW options, subscription options: by the option's name
    if _secret_name(str(node.get("defname", ""))):
        places.option(node, _WHOLE)


def _user_mapping_rule(places: _Places, node: dict[str, Any]) -> None:
    # a user mapping exists to hold credentials: only the user name is shown
    for item in node.get("options", []):
        elem = item.get("DefElem", {})
        if str(elem.get("defname", "")).lower() not in ("user", "username"):
            places.option(elem, _WHOLE)


def _subscription_rule(places: _Places, node: dict[str, Any]) -> None:
    if "conninfo" in node:
        start = places.char(node.get("conninfo_location", 0))
        places.runs.append((start, 1, _CONNINFO_ONLY))
        places.values[start] = str(node["conninfo"])


def _call_rule(places: _Places, node: dict[str, Any]) -> None:
    names = node.get("funcname", [])
    name = str(names[-1].get("String", {}).get("sval", "")) if names else ""
    args = node.get("args", [])
    if name in _DBLINK:
        for arg in args[: _DBLINK[name]]:
            places.connection(arg)
    elif name == "set_config" and args:
        setting = args[0].get("A_Const", {}).get("sval", {}).get("sval", "")
        if _secret_name(str(setting)):
            places.expression(args[1:2], _WHOLE)


def _body_rule(places: _Places, node: dict[str, Any]) -> None:
    # DO and CREATE FUNCTION/PROCEDURE: the body is code, hidden whole
    for item in node.get("args", node.get("options", [])):
        elem = item.get("DefElem", {})
        if elem.get("defname") == "as":
            places.option(elem, _WHOLE)


def _setting_rule(places: _Places, node: dict[str, Any]) -> None:
    # SET, ALTER SYSTEM/ROLE/DATABASE … SET, a function's SET: by the setting's name
    if _secret_name(str(node.get("name", ""))):
        places.expression(node.get("args", []), _WHOLE)


_RULES: dict[str, Callable[[_Places, dict[str, Any]], None]] = {
    "DefElem": _option_rule,
    "CreateUserMappingStmt": _user_mapping_rule,
    "AlterUserMappingStmt": _user_mapping_rule,
    "CreateSubscriptionStmt": _subscription_rule,
    "AlterSubscriptionStmt": _subscription_rule,
    "FuncCall": _call_rule,
    "DoStmt": _body_rule,
    "CreateFunctionStmt": _body_rule,
    "VariableSetStmt": _setting_rule,
    # ALTER SYSTEM/ROLE/DATABASE … SET: a VariableSetStmt in a field that names no type
    "setstmt": _setting_rule,
}


def _char_offsets(text: str) -> Callable[[int], int]:
    """Byte offset in the UTF-8 text -> index in `text` (-1 inside a character)."""
    if text.isascii():
        return lambda offset: offset
    starts: dict[int, int] = {}
    offset = 0
    for index, c in enumerate(text):
        starts[offset] = index
        offset += 1 if c < "\x80" else 2 if c < "\u0800" else 3 if c < "\U00010000" else 4
    starts[offset] = len(text)
    return lambda offset: starts.get(offset, -1)


def _units(tokens: Sequence[pglast.parser.Token]) -> list[tuple[int, int, bool]]:
    """(start, end, is a string constant) of each token but comments; `U&'…' UESCAPE '…'`
    is one."""
    units: list[tuple[int, int, bool]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token.name in _COMMENTS:
            continue
        end = token.end + 1
        if (
            token.name == "USCONST"
            and i + 1 < len(tokens)
            and tokens[i].name == "UESCAPE"
            and tokens[i + 1].name == "SCONST"
        ):
            end = tokens[i + 1].end + 1
            i += 2
        units.append((token.start, end, token.name in _LITERALS))
    return units


def _parsed(text: str, tree: Any, tokens: Sequence[pglast.parser.Token]) -> _Redacted:
    places = _Places(_char_offsets(text))
    places.visit(tree)
    units = _units(tokens)
    index = {start: i for i, (start, _end, _literal) in enumerate(units)}
    how: dict[int, int] = {}

    def mark(first: int, count: int, way: int) -> None:
        for i in range(first, min(first + count, len(units))):
            how[i] = max(how.get(i, 0), way)

    for start, count, way in places.runs:
        if start in index:
            mark(index[start], count, way)
        else:
            places.everything = True
    for start, count, way in places.after_name:
        i = index.get(start, len(units)) + 1
        # `name = value`: the value is the unit after the equals sign
        if i < len(units) and text[units[i][0] : units[i][1]] == "=":
            i += 1
        if i < len(units):
            mark(i, count, way)
        else:
            places.everything = True
    pieces: list[str] = []
    secrets: list[str] = []
    pos = 0
    for i, (start, end, literal) in enumerate(units):
        way = _WHOLE if places.everything and literal else how.get(i, 0)
        if not way and not literal:
            continue
        raw = text[start:end]
        value = places.values.get(start)
        if value is None:
            value = _decode(raw) if literal else raw
        hidden = _hide(raw, value, way)
        if hidden is not None:
            pieces += (text[pos:start], hidden[0])
            secrets += hidden[1]
            pos = end
    if not pieces:
        return _Redacted(text, (), places.secret_parameters, parsed=True)
    pieces.append(text[pos:])
    return _Redacted("".join(pieces), tuple(secrets), places.secret_parameters, parsed=True)


def _hide(raw: str, value: str, way: int) -> tuple[str, list[str]] | None:
    """The text that stands for a constant, and what it hid; None keeps it."""
    if way == _WHOLE:
        return _QUOTED_MASK, [raw, value]
    if way == _CONNINFO_ONLY:
        conninfo = _mask_conninfo(value)
        if conninfo is None:
            # a connection's name (or a dbname) alone holds no password; anything else
            # that is no conninfo libpq reads is hidden whole
            plain = "=" not in value and "://" not in value and not value.isspace()
            return None if plain and len(value.split()) == 1 else (_QUOTED_MASK, [raw, value])
        return (_quote(conninfo[0]), conninfo[1]) if conninfo[1] else None
    hidden = _redact_value(value)
    return None if hidden is None else (_quote(hidden[0]), [*hidden[1], raw, value])


def _redact_value(value: str) -> tuple[str, list[str]] | None:
    """A string constant found nowhere special (or a bind value): (what to show instead,
    what it hid), None when it names no password."""
    if _SECRET_VALUE.search(value) is None:
        return None
    conninfo = _mask_conninfo(value)
    if conninfo is not None:
        return conninfo if conninfo[1] else None
    inner = _redaction(value)
    if inner is not None and inner.text != value:
        return inner.text, list(inner.secrets)
    # SQL that names a password without holding one stays, and so does a name (a setting,
    # a column, a JSON key: one word); any other text that names a password is hidden
    parsed = inner is not None and inner.parsed
    return None if parsed or len(value.split()) == 1 else (MASK, [value])


def _mask_conninfo(value: str) -> tuple[str, list[str]] | None:
    """A libpq conninfo (keyword/value or URI) with its passwords masked, and the passwords;
    None when `value` is neither."""
    secrets: list[str] = []
    if _URI_FORM.match(value):

        def hide(m: re.Match[str]) -> str:
            secrets.append(m.group(0)[len(m.group(1)) :].rstrip("@"))
            return m.group(1) + MASK + ("@" if m.group(0).endswith("@") else "")

        masked = _URI_PARAMETER.sub(hide, _URI.sub(hide, value))
        return masked, secrets
    pos = 0
    pairs: list[tuple[str, int, int]] = []
    while pos < len(value):
        m = _CONNINFO_PAIR.match(value, pos)
        if m is None:
            return None
        pairs.append((m.group(1), m.start(2), m.end(2)))
        pos = m.end()
    if not pairs:
        return None
    out: list[str] = []
    pos = 0
    for keyword, start, end in pairs:
        if "password" in keyword.lower():
            written = value[start:end]
            secrets += (written, re.sub(r"\\(.)", r"\1", written.strip("'")))
            out += (value[pos:start], MASK)
            pos = end
    out.append(value[pos:])
    return "".join(out), secrets


def _decode(raw: str) -> str:
    """The value of a string constant as the server reads it."""
    if raw.startswith("$"):
        tag = raw[: raw.index("$", 1) + 1]
        return raw[len(tag) : len(raw) - len(tag)]
    if raw.startswith("'") and raw.endswith("'") and "\n" not in raw:
        return raw[1:-1].replace("''", "'")
    try:  # E'', U&'', a literal continued on the next line: the server's own reading
        tree = json.loads(pglast.parser.parse_sql_json(f"SELECT {raw}"))
        target = tree["stmts"][0]["stmt"]["SelectStmt"]["targetList"][0]["ResTarget"]
        return str(target["val"]["A_Const"]["sval"].get("sval", ""))
    except Exception:  # a bit string, or text the parser rejects: judged as written
        return raw


# -- text the parser rejects ---------------------------------------------------------------


def _unparsed(text: str) -> _Redacted:
    """Text the parser rejects. A statement (it starts like one, or names what holds code
    or a conninfo: DO, a function, dblink, a user mapping, a subscription, escapes) shows
    none of its string constants; other text (a message, a DSN) hides those that name a
    password. What follows a role's PASSWORD, DO or a function's AS is hidden to the end of
    its statement: the password may be unquoted, or quoted in a way that is unknown."""
    every = _STATEMENT_START.match(text) is not None or _names_code(text.lower())
    # (start, end, what stands for it, what it hid)
    spans: list[tuple[int, int, str, list[str]]] = []
    view = list(text)
    for m in _STRING.finditer(text):
        start, end = m.span()
        view[start:end] = "\0" * (end - start)
        raw = m.group(0)
        inner = _QUOTES.match(raw)
        value = inner.group("value") if inner else raw
        if every:
            spans.append((start, end, _QUOTED_MASK, [raw, value]))
        else:
            found = _redact_value(value)
            if found is not None:
                spans.append((start, end, _quote(found[0]), [*found[1], raw, value]))
    seen = "".join(view)
    secret_parameters = False
    begin = 0
    while begin < len(seen):
        end = seen.find(";", begin)
        end = len(seen) if end < 0 else end
        rest = _secret_rest(seen, begin, end)
        if rest is not None:
            start = rest + len(seen[rest:end]) - len(seen[rest:end].lstrip())
            stop = start + len(text[start:end].rstrip())
            if _PARAMETER.fullmatch(seen, start, stop) is not None:
                # PASSWORD $1: the bound value is the secret (a normalized text's $1 is none)
                secret_parameters = True
            elif start < stop:
                spans.append((start, stop, _QUOTED_MASK, [text[start:stop]]))
        begin = end + 1
    if not spans:
        return _Redacted(text, (), secret_parameters)
    spans.sort(key=lambda span: (span[0], -span[1]))
    merged: list[tuple[int, int, str, list[str]]] = []
    for span in spans:
        if merged and span[0] < merged[-1][1]:  # overlaps the one before: one mask for both
            start, end, _shown, hid = merged[-1]
            merged[-1] = (start, max(end, span[1]), _QUOTED_MASK, hid + span[3])
        else:
            merged.append(span)
    pieces: list[str] = []
    secrets: list[str] = []
    pos = 0
    for start, end, shown, hid in merged:
        pieces += (text[pos:start], shown)
        secrets += hid
        pos = end
    pieces.append(text[pos:])
    return _Redacted("".join(pieces), tuple(secrets), secret_parameters)


def _secret_rest(seen: str, begin: int, end: int) -> int | None:
    """Where the part of a statement (seen[begin:end], its strings blanked) that may hold a
    secret in unknown quoting begins: after a role's PASSWORD (or IDENTIFIED BY), after DO,
    after a function's AS; None when it holds none."""
    do = _DO_STATEMENT.match(seen, begin, end)
    if do is not None:
        return do.end()
    function = _FUNCTION_STATEMENT.match(seen, begin, end)
    if function is not None:
        body = _AS_WORD.search(seen, function.end(), end)
        return None if body is None else body.end()
    if _ROLE_STATEMENT.match(seen, begin, end) is None:
        return None
    for m in _PASSWORD_WORD.finditer(seen, begin, end):
        if _ROLE_WORD.search(seen, begin, m.start()) is not None:
            return m.end()
    return None


def _names_code(low: str) -> bool:
    """Whether a text names a construct that holds code or a conninfo, or spells words with
    escapes."""
    return (
        "function" in low
        or "procedure" in low
        or "dblink" in low
        or "mapping" in low
        or "subscription" in low
        or "identified" in low
        or "u&" in low
        or (
            "\\" in low
            and _LETTER_ESCAPE.search(low) is not None
            and _ESCAPES.search(low) is not None
        )
        or ("do" in low and _mentions_do(low))
    )
