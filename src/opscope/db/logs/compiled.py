"""The log reader's hot modules, compiled with mypyc when `scripts/setup` could build them.

The modules below are plain, strictly typed Python; `scripts/build_compiled.py` compiles
them into the environment (never into the source tree), next to a digest of the sources
it compiled. The package uses the compiled modules only while that digest matches the
sources beside it: an edited module runs as Python until setup builds it again, and
OPSCOPE_PURE_PYTHON=1 turns the compiled modules off altogether. Either way the results
are the same; only the speed differs.
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from pathlib import Path

#: module files (relative to this package) that are compiled, in dependency order
MODULES = ("normalize.py", "aggregate.py", "sessions.py", "parse_stderr.py")
DIGEST_FILE = "sources.sha256"


def build_dir() -> Path:
    """Where the compiled modules of this interpreter live: inside its environment."""
    tag = sysconfig.get_config_var("SOABI") or sys.implementation.cache_tag or "py"
    return Path(sys.prefix) / "opscope-compiled" / tag


def source_digest(package_dir: Path) -> str:
    """A digest of every module of the package, not only the compiled ones: compiled code
    checks the types it gets from its neighbours (a record, a parse result) as they were
    when it was built, so a change to any of them must set the build aside too."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def compiled_path(package_dir: Path) -> Path | None:
    """The directory holding this package's compiled modules, if they match its sources."""
    if os.environ.get("OPSCOPE_PURE_PYTHON"):
        return None
    root = build_dir()
    try:
        built = (root / DIGEST_FILE).read_text().strip()
        if built != source_digest(package_dir):
            return None
    except OSError:
        return None
    return root


def activate(package_path: list[str]) -> list[str]:
    """The package's __path__ with the compiled modules' directory first, when they are
    current; mypyc's shared runtime module sits at the top of that tree."""
    if not package_path:
        return package_path
    root = compiled_path(Path(package_path[0]))
    if root is None:
        return package_path
    if str(root) not in sys.path:
        sys.path.append(str(root))
    return [str(root / "opscope" / "db" / "logs"), *package_path]


def active() -> bool:
    """Whether the hot modules run compiled in this process."""
    from opscope.db.logs import parse_stderr

    return not parse_stderr.__file__ or not parse_stderr.__file__.endswith(".py")
