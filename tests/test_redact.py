"""Redaction of passwords in every spelling PostgreSQL accepts, by their place in the parse
tree: each class of the "passwords survive in log output" report, every secret-bearing
statement, text the parser rejects, messages quoting a statement and bind parameters.

What the real server logs (and `opscope logs` shows of it) is in test_logs_cluster.py."""

from __future__ import annotations

import pglast.parser
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from opscope.redact import MASK, password_values, redact, redact_message, redact_parameters

HIDDEN = f"'{MASK}'"


def parses(sql: str) -> bool:
    try:
        pglast.parser.parse_sql_json(sql)
    except pglast.parser.ParseError:
        return False
    return True


def hides(sql: str, *secrets: str) -> str:
    """`redact(sql)` after checking that it hides each secret and shows the mask."""
    out = redact(sql)
    for secret in secrets:
        assert secret not in out, (sql, out)
    assert MASK in out, (sql, out)
    return out


# -- the classes of the report: one test each, over the forms of the class -----------------


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER ROLE bob PASSWORD'Hunter7'",
        "alter role bob with password'Hunter7' login",
        "CREATE USER bob ENCRYPTED PASSWORD'Hunter7'",
        "ALTER ROLE bob PASSWORD\t'Hunter7'",
        "ALTER ROLE bob PASSWORD\n'Hunter7'",
    ],
)
def test_no_space_before_the_literal(sql: str) -> None:
    assert parses(sql)
    out = hides(sql, "Hunter7")
    assert out.startswith(sql.split("'")[0]), "the keywords stay"


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER ROLE bob PASSWORD /* rotated */ 'Hunter8'",
        "ALTER ROLE bob PASSWORD/**/'Hunter8'",
        "ALTER ROLE bob PASSWORD /* a /* nested */ one */ 'Hunter8'",
        "ALTER ROLE bob PASSWORD -- rotated\n'Hunter8'",
        "ALTER ROLE bob /* it's */ PASSWORD /* 'decoy' */ 'Hunter8' VALID UNTIL 'infinity'",
        "CREATE USER MAPPING FOR bob SERVER s OPTIONS (password /* c */ 'Hunter8')",
    ],
)
def test_a_comment_between_password_and_the_literal(sql: str) -> None:
    assert parses(sql)
    out = hides(sql, "Hunter8")
    # what is no secret stays readable: the comments and the other literals
    assert "/*" not in sql or "*/" in out
    if "infinity" in sql:
        assert out.endswith("VALID UNTIL 'infinity'")


@pytest.mark.parametrize(
    ("sql", "secret"),
    [
        ("ALTER ROLE bob PASSWORD U&'Hunter9'", "Hunter9"),
        ("ALTER ROLE bob PASSWORD U&'Hunt\\0065r9'", "Hunt\\0065r9"),
        ("ALTER ROLE bob PASSWORD U&'Hunt\\+000065r9' LOGIN", "Hunt\\+000065r9"),
        ("ALTER ROLE bob PASSWORD U&'Hunt!0065r9' UESCAPE '!' LOGIN", "Hunt!0065r9"),
        ("ALTER ROLE bob PASSWORD u&'H\\00fcnter9'", "H\\00fcnter9"),
        # conninfos spelled with escapes: no `password` in the text as written
        ("SELECT U&'host=h p\\0061ssword=Hunter9'", "Hunter9"),
        ("SELECT dblink_connect(U&'host=h p\\0061ssword=Hunter9')", "Hunter9"),
    ],
)
def test_unicode_escape_literals(sql: str, secret: str) -> None:
    assert parses(sql)
    out = hides(sql, secret, secret.replace("\\0065", "e"))
    assert "UESCAPE" not in out, "the escape clause belongs to the literal it replaced"
    if "LOGIN" in sql:
        assert out.endswith(f"{HIDDEN} LOGIN")


@pytest.mark.parametrize(
    ("sql", "secrets"),
    [
        ("ALTER ROLE bob PASSWORD 'Hunter10'\n'Second'", ("Hunter10", "Second")),
        ("ALTER ROLE bob PASSWORD 'Hunter10'  \n\t 'Second' LOGIN", ("Hunter10", "Second")),
        ("ALTER ROLE bob PASSWORD 'Hunter10' -- more\n 'Second'", ("Hunter10", "Second")),
        ("ALTER ROLE bob PASSWORD 'Hun'\n'ter'\n'10'", ("Hun'", "'ter'", "'10'")),
        ("ALTER ROLE bob PASSWORD E'Hunter10\\n'\n'Second'", ("Hunter10", "Second")),
        # the word itself continued: the decoded literal is a conninfo
        ("SELECT 'host=h pass'\n'word=Hunter10'", ("Hunter10",)),
    ],
)
def test_a_literal_continued_on_the_next_line(sql: str, secrets: tuple[str, ...]) -> None:
    assert parses(sql)
    out = hides(sql, *secrets)
    assert out.count(MASK) == 1, "one literal, one mask"


@pytest.mark.parametrize(
    "sql",
    [
        "DO $$ begin execute format('alter role bob password %L', 'Hunter' || '11'); end $$",
        "DO $$ begin execute 'alter role bob password '"
        " || quote_literal(chr(72) || 'unter11'); end $$",
        "DO $body$ declare p text := reverse('11retnuH'); begin execute 'alter role bob"
        " password ' || quote_literal(p); end $body$",
        "DO LANGUAGE plpgsql 'begin execute ''alter role bob password ''''Hunter11''''''; end'",
        "DO E'begin execute \\'alter role bob password \\'\\'Hunter11\\'\\'\\'; end'"
        " LANGUAGE plpgsql",
        "DO $$ begin perform dblink_connect('host=h password=Hunter11'); end $$",
        # bodies of functions and procedures are code as well
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ begin execute"
        " 'alter role bob password ''Hunter11'''; end $$",
        "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS 'select ''Hunter11'''",
    ],
)
def test_a_password_built_inside_a_do_block(sql: str) -> None:
    """Whatever the body computes (concatenation, chr, reverse), it is not shown."""
    assert parses(sql)
    out = hides(sql, "Hunter", "unter11", "11retnuH")
    assert out.startswith(("DO ", "CREATE "))


# -- every place a secret goes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "shown"),
    [
        ("CREATE ROLE bob LOGIN PASSWORD 'Hunter20'", f"CREATE ROLE bob LOGIN PASSWORD {HIDDEN}"),
        ("CREATE USER bob WITH ENCRYPTED PASSWORD 'Hunter20'", None),
        ("CREATE GROUP staff PASSWORD 'Hunter20'", None),
        ("ALTER USER bob WITH PASSWORD 'Hunter20' VALID UNTIL '2030-01-01'", None),
        ("ALTER ROLE bob PASSWORD E'Hunter20\\'s'", f"ALTER ROLE bob PASSWORD {HIDDEN}"),
        ("ALTER ROLE bob PASSWORD $pw$Hunter20$pw$", f"ALTER ROLE bob PASSWORD {HIDDEN}"),
        ("ALTER ROLE bob PASSWORD 'SCRAM-SHA-256$4096:Hunter20'", None),
        (
            "CREATE ROLE a PASSWORD 'Hunter20'; CREATE ROLE b PASSWORD 'Hunter20b'",
            f"CREATE ROLE a PASSWORD {HIDDEN}; CREATE ROLE b PASSWORD {HIDDEN}",
        ),
        (
            "CREATE USER MAPPING FOR bob SERVER far OPTIONS (user 'bob', password 'Hunter20')",
            f"CREATE USER MAPPING FOR bob SERVER far OPTIONS (user 'bob', password {HIDDEN})",
        ),
        (
            "ALTER USER MAPPING FOR bob SERVER far OPTIONS (ADD password 'Hunter20', SET user"
            " 'bob')",
            f"ALTER USER MAPPING FOR bob SERVER far OPTIONS (ADD password {HIDDEN}, SET user"
            " 'bob')",
        ),
        # a user mapping holds credentials whatever the wrapper names them
        ("CREATE USER MAPPING FOR bob SERVER s3 OPTIONS (access_token 'Hunter20')", None),
        ("ALTER SERVER far OPTIONS (ADD sslpassword 'Hunter20')", None),
        (
            "CREATE SUBSCRIPTION s CONNECTION 'host=h password=Hunter20 dbname=d' PUBLICATION p",
            "CREATE SUBSCRIPTION s CONNECTION 'host=h password=******** dbname=d' PUBLICATION p",
        ),
        (
            "ALTER SUBSCRIPTION s CONNECTION 'postgresql://bob:Hunter20@h/d'",
            "ALTER SUBSCRIPTION s CONNECTION 'postgresql://bob:********@h/d'",
        ),
        (
            "ALTER SUBSCRIPTION s CONNECTION 'host=h password=''Hunter 20'''",
            "ALTER SUBSCRIPTION s CONNECTION 'host=h password=********'",
        ),
        (
            "SELECT dblink_connect('c', 'host=h password=Hunter20')",
            "SELECT dblink_connect('c', 'host=h password=********')",
        ),
        (
            "SELECT public.dblink_connect_u('host=h password=Hunter20')",
            "SELECT public.dblink_connect_u('host=h password=********')",
        ),
        (
            "SELECT * FROM dblink('host=h password=Hunter20', 'select 1') AS t(a int)",
            "SELECT * FROM dblink('host=h password=********', 'select 1') AS t(a int)",
        ),
        (
            "SELECT dblink_exec('host=h password=' || 'Hunter20', 'vacuum')",
            f"SELECT dblink_exec({HIDDEN} || {HIDDEN}, 'vacuum')",
        ),
        ("SELECT dblink_connect(format('host=h password=%s', 'Hunter20'))", None),
        (
            "SELECT dblink_exec('c', 'alter role bob password ''Hunter20''')",
            "SELECT dblink_exec('c', 'alter role bob password ''********''')",
        ),
        ("SELECT 'postgresql://bob:Hunter20@h/d'", "SELECT 'postgresql://bob:********@h/d'"),
        ("SELECT E'host=h p\\x61ssword=Hunter20'", "SELECT 'host=h password=********'"),
        ("SELECT 'the password is Hunter20'", f"SELECT {HIDDEN}"),
        ("SET my.db_password = 'Hunter20'", None),
        ("ALTER SYSTEM SET ssl_passphrase_command = 'echo Hunter20'", None),
        ("ALTER ROLE bob SET my.secret TO 'Hunter20'", None),
        ("SELECT set_config('my.password', 'Hunter20', false)", None),
    ],
)
def test_every_place_a_secret_goes(sql: str, shown: str | None) -> None:
    assert parses(sql)
    out = hides(sql, "Hunter20", "Hunter 20")
    if shown is not None:
        assert out == shown


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM t WHERE a = 'x' AND b = 2",
        "INSERT INTO t VALUES (1, 'do it') ON CONFLICT (id) DO NOTHING",
        "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 'y'",
        "SET password_encryption = 'scram-sha-256'",
        "SELECT current_setting('password_encryption'), data->>'password' FROM t",
        "SELECT dblink_connect('myconn', 'host=h dbname=d')",
        "SELECT dblink_exec('myconn', 'vacuum')",
        "CREATE SUBSCRIPTION s CONNECTION 'host=h dbname=d' PUBLICATION p",
        "CREATE ROLE bob PASSWORD NULL",
        "ALTER ROLE bob PASSWORD $1",
        "SELECT 'https://example.com/path'",
        "SELECT E'a\\nb\\\\c'",
        "SELECT 'décor', 'ümlaut' FROM \"tâble\"",
    ],
)
def test_no_secret_means_no_change(sql: str) -> None:
    assert parses(sql)
    assert redact(sql) == sql


def test_multibyte_text_before_the_literal() -> None:
    """The parser counts bytes of UTF-8, the scanner and Python characters: the literal
    blanked is the one at the right place, and everything around it is kept intact."""
    sql = "ALTER ROLE \"rôle_é€\" PASSWORD 'pâss€' VALID UNTIL 'infinity' /* 💥 */"
    assert (
        redact(sql) == f"ALTER ROLE \"rôle_é€\" PASSWORD {HIDDEN} VALID UNTIL 'infinity' /* 💥 */"
    )
    sql = "SELECT '😀😀', dblink_connect('c', 'host=h password=Hunter€30'), 'ü'"
    assert redact(sql) == "SELECT '😀😀', dblink_connect('c', 'host=h password=********'), 'ü'"
    sql = "COMMENT ON TABLE \"ℕ\" IS 'é'; ALTER USER MAPPING FOR bob SERVER s OPTIONS (SET"
    sql += " password 'ß€30')"
    assert redact(sql).endswith(f"(SET password {HIDDEN})")


# -- text the parser rejects ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secrets"),
    [
        ("alter role bob password 'Hunter4Unterminated", ("Hunter4",)),
        ("alter role bob password 'cut off\nhere", ("cut off", "here")),
        ("ALTER ROLE bob PASSWORD Hunter40 VALID UNTIL 'infinity'", ("Hunter40",)),
        ("ALTER ROLE bob PASSWORD E'Hunter40\\", ("Hunter40",)),
        ("ALTER ROLE bob PASSWORD $x$Hunter40", ("Hunter40",)),
        ("ALTER ROLE bob PASSWORD U&'Hunter40", ("Hunter40",)),
        ("ALTER ROLE bob UNENCRYPTED PASSWORD 'Hunter40'", ("Hunter40",)),
        ("CREATE USER MAPPING FOR bob SERVER s OPTIONS (password 'Hunter40'", ("Hunter40",)),
        ("SELECT dblink_connect('host=h password=Hunter40'", ("Hunter40",)),
        ("DO $$ begin execute 'alter role bob password ''Hunter40'''", ("Hunter40",)),
        ("CREATE SUBSCRIPTION s CONNECTION 'host=h pass", ("host=h",)),
        # another product's dialect
        ("CREATE USER 'bob'@'%' IDENTIFIED BY 'Hunter40'", ("Hunter40",)),
        ("ALTER USER bob IDENTIFIED BY Hunter40", ("Hunter40",)),
        ("SET PASSWORD FOR 'bob'@'%' = 'Hunter40'", ("Hunter40",)),
    ],
)
def test_text_the_parser_rejects(text: str, secrets: tuple[str, ...]) -> None:
    """Truncated statements and other dialects keep their words, no literal, and nothing
    after a role's PASSWORD."""
    assert not parses(text)
    out = hides(text, *secrets)
    assert out.split()[0] == text.split()[0]


def test_messages_keep_their_words() -> None:
    """Text that is no SQL at all keeps what holds no secret."""
    for message in (
        'password authentication failed for user "bob"',
        "function f(integer) does not exist",
        'could not connect to server: host "h" password retrieved from file "/x/.pgpass"',
        "invalid connection URL: it has more than one '@'; percent-encode '@' as %40 and '/'"
        " as %2F in the user name and the password (and '@' in parameter values)",
    ):
        assert redact(message) == message
    assert redact("postgresql://bob:s3cr3t@h/d") == "postgresql://bob:********@h/d"
    assert redact("host=h password='a b' user=u") == "host=h password=******** user=u"
    assert redact("postgres://h/d?sslmode=require&password=s3cr3t") == (
        "postgres://h/d?sslmode=require&password=********"
    )


# -- messages and parameters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "statement", "secret"),
    [
        (
            'unterminated quoted string at or near "\'Hunter4Unterminated"',
            "alter role bob password 'Hunter4Unterminated",
            "Hunter4",
        ),
        ('syntax error at or near "Msg2Secret"', "ALTER ROLE x PASSWORD Msg2Secret", "Msg2"),
        (
            'syntax error at or near "Hunter15DoError"',
            "DO $$ begin execute 'alter role bob password Hunter15DoError'; end $$",
            "Hunter15",
        ),
        (
            'syntax error at or near "Hunter50"',
            "ALTER ROLE bob PASSWORD /* x */ U&'Hunter50' LOGIN x",
            "Hunter50",
        ),
        (
            'invalid input syntax for type integer: "tt2Secret"',
            "CREATE USER MAPPING FOR bob SERVER s OPTIONS (password 'Pa''tt2Secret')",
            "tt2Secret",
        ),
    ],
)
def test_messages_quoting_the_statement(message: str, statement: str, secret: str) -> None:
    out = redact_message(message, statement)
    assert secret not in out and MASK in out
    assert password_values(statement)


def test_bind_parameters() -> None:
    # a parameter where a secret goes: every value is hidden
    assert redact_parameters("SELECT dblink_connect($1, $2)", "$1 = 'c', $2 = 'Hunter60'") == (
        f"$1 = {HIDDEN}, $2 = {HIDDEN}"
    )
    assert redact_parameters("SELECT dblink_exec('host=h password=' || $1, 'x')", "$1 = 'H60'") == (
        f"$1 = {HIDDEN}"
    )
    assert redact_parameters("ALTER ROLE x PASSWORD $1", "$1 = 'Param1Secret'") == f"$1 = {HIDDEN}"
    # elsewhere each value is judged as a constant of the statement would be
    assert redact_parameters(
        "SELECT $1, $2, $3", "$1 = 'host=h password=Hunter60', $2 = 'bob'"
    ) == ("$1 = 'host=h password=********', $2 = 'bob'")
    assert redact_parameters("SELECT $1", "$1 = 'it''s'") == "$1 = 'it''s'"
    assert redact_parameters("SELECT $1", None) is None


# -- the property: any password, in any form of every class --------------------------------

#: any characters PostgreSQL takes in a string, and often those that end or escape one
_PASSWORDS = st.text(
    st.sampled_from("'\\$\"%@:=;-/* \n\tUEe&")
    | st.characters(codec="utf-8", exclude_characters="\x00"),
    min_size=4,
).filter(lambda p: p.strip() != "" and MASK not in f"'{p}'")


def _standard(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _escape(value: str) -> str:
    # letters spelled as \x escapes too: the text as written never shows them
    out = []
    for c in value:
        if c in "\\'":
            out.append("\\" + c)
        elif c.isascii() and c.isalpha() and ord(c) % 2:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return "E'" + "".join(out) + "'"


def _unicode(value: str) -> str:
    out = []
    for c in value:
        if c == "\\":
            out.append("\\\\")
        elif c == "'":
            out.append("''")
        elif ord(c) % 2:
            out.append(f"\\{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\+{ord(c):06x}")
        else:
            out.append(c)
    return "U&'" + "".join(out) + "'"


def _dollar(value: str) -> str:
    tag = "q"
    while f"${tag}" in value or value.endswith(f"${tag[:-1]}") or value.endswith("$"):
        tag += "q"
        if len(tag) > 20:  # a value ending in $: another quoting for it
            return _standard(value)
    return f"${tag}${value}${tag}$"


def _continued(value: str) -> str:
    cut = len(value) // 2
    return _standard(value[:cut]) + "\n  -- continued\n " + _standard(value[cut:])


_QUOTINGS = st.sampled_from([_standard, _escape, _unicode, _dollar, _continued])
_GAPS = st.sampled_from([" ", "", "\n", " /* c */ ", "/**/", " -- c\n"])


def _conninfo(password: str) -> str:
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    return f"host=h password='{quoted}' dbname=d"


def _body(password: str) -> str:
    return f"begin execute 'alter role r password ' || quote_literal({_standard(password)}); end"


#: (statement before the literal, what the literal holds, statement after it)
_FORMS = [
    ("ALTER ROLE r PASSWORD{gap}", lambda p: p, " VALID UNTIL 'infinity'"),
    ("CREATE USER r WITH LOGIN ENCRYPTED PASSWORD{gap}", lambda p: p, ""),
    ("CREATE USER MAPPING FOR r SERVER s OPTIONS (user 'r', password{gap}", lambda p: p, ")"),
    ("ALTER USER MAPPING FOR r SERVER s OPTIONS (SET password{gap}", lambda p: p, ")"),
    ("SELECT dblink_connect('c',{gap}", _conninfo, ")"),
    ("CREATE SUBSCRIPTION s CONNECTION{gap}", _conninfo, " PUBLICATION p"),
    ("DO{gap}", _body, ""),
    ("DO LANGUAGE plpgsql{gap}", _body, ""),
]


@given(
    password=_PASSWORDS,
    form=st.sampled_from(_FORMS),
    quoting=_QUOTINGS,
    gap=_GAPS,
    cut=st.floats(0, 1),
)
def test_no_password_survives_in_any_form(
    password: str, form: tuple[str, object, str], quoting: object, gap: str, cut: float
) -> None:
    head_template, holds, tail = form
    assert callable(holds) and callable(quoting)
    if not gap and quoting is not _standard:
        gap = " "  # PASSWORDE'…' or PASSWORD$$…: another word, not a literal
    head = head_template.format(gap=gap)
    literal = quoting(holds(password))
    sql = head + literal + tail
    fixed = head + HIDDEN + "\n  -- continued\n " + HIDDEN + tail + _conninfo("") + _body("")
    assume(all(password[i : i + 4] not in fixed for i in range(len(password) - 3)))
    assert parses(sql), sql
    out = redact(sql)
    assert password not in out, (sql, out)
    assert literal not in out

    # the same statement cut off inside its literal: the parser rejects it (or reads a
    # shorter statement); no piece of the password that it holds is shown
    short = sql[: len(head) + max(1, int(len(literal) * cut))]
    out = redact(short)
    shown = short[len(head) :]
    for i in range(len(password) - 3):
        window = password[i : i + 4]
        assert window not in shown or window not in out, (short, out)


@given(
    password=st.from_regex(r"[A-Za-z_\u00c0-\u024f][\w$]{3,20}", fullmatch=True),
    statement=st.sampled_from(
        [
            "ALTER ROLE r PASSWORD {}",
            "CREATE USER r WITH LOGIN PASSWORD {} VALID UNTIL 'infinity'",
            "DO $$ begin execute 'alter role r password {}'; end $$",
        ]
    ),
)
def test_a_message_never_quotes_a_password(password: str, statement: str) -> None:
    """The password written without quotes: the server's syntax error quotes it, as the
    log's message and STATEMENT lines show."""
    sql = statement.format(password)
    assume(password.lower() not in sql.replace(password, "").lower())
    assume(sql.startswith("DO") or not parses(sql))  # PASSWORD NULL is no password
    message = f'syntax error at or near "{password}"'
    assert password not in redact_message(message, sql)
    assert password not in redact(sql)
