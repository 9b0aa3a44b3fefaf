"""The one sanitizer for text from watched systems (identifiers, query texts, messages):
every renderer and every line the CLI prints passes such text through `visible`, so nothing
from a database can drive the reader's terminal."""

from __future__ import annotations

import re

# C0 controls but newline and tab, DEL, and C1 controls (0x9b is a one-byte CSI): text holding
# them would drive the reader's terminal (an ESC sequence in a query comment or a table name).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _caret(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    return "^" + chr(code ^ 0x40) if code < 0x20 or code == 0x7F else "\ufffd"


def visible(text: object) -> str:
    """`text` with control characters in caret notation (ESC is `^[`), C1 ones as U+FFFD."""
    return _CONTROLS.sub(_caret, str(text))


def _escape_code(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group(0)):04x}"


def json_safe(text: str) -> str:
    """JSON text with the control characters json.dumps leaves raw (DEL and C1) written as
    \\u escapes: the same data, and inert when someone prints the file."""
    return _CONTROLS.sub(_escape_code, text)
