"""Compile the log reader's hot modules with mypyc into the environment (scripts/setup).

Idempotent: nothing is built while the digest of the sources matches the last build. The
build goes to `opscope.db.logs.compiled.build_dir()` (inside the venv, never into the
source tree); a build that fails leaves the pure-Python modules in use and says so.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from opscope.db.logs.compiled import DIGEST_FILE, MODULES, build_dir, source_digest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "opscope" / "db" / "logs"


def main() -> int:
    digest = source_digest(PACKAGE)
    target = build_dir()
    try:
        if (target / DIGEST_FILE).read_text().strip() == digest:
            return 0
    except OSError:
        pass
    from mypyc.build import mypycify
    from setuptools import setup  # type: ignore[import-untyped]  # no stubs; only run here

    print(f"build_compiled: compiling {len(MODULES)} log modules with mypyc", file=sys.stderr)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="opscope-mypyc-") as tmp:
        os.chdir(SRC)  # module names come from the paths: opscope.db.logs.<name>
        paths = [f"opscope/db/logs/{name}" for name in MODULES]
        setup(
            name="opscope-compiled",
            ext_modules=mypycify(paths, target_dir=tmp, group_name="opscope_logs"),
            script_args=["-q", "build_ext", "--build-lib", str(partial), "--build-temp", tmp],
        )
    (partial / DIGEST_FILE).write_text(digest + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
