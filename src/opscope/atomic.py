"""Files written whole or not at all: a report, a state file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str, *, private: bool = False) -> None:
    """Write `text` next to `path`, then rename it over `path`: a reader (or a failed run)
    never sees half a file. A symlink is followed, so the file it points to is replaced and
    the link stays. Raises OSError; nothing is left behind on failure.

    mkstemp makes the file private (0600); unless `private`, it gets the permissions any new
    file would get under the umask, as a report should."""
    target = Path(os.path.realpath(path))
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if not private:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
