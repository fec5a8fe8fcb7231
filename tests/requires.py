"""The one place where a test says what it needs that may be missing from a machine.

`require_module(name, install)` returns the imported module, `require_tool(name, install)` the
path of a program, `require_file(path, what, install)` the path of a file. When the thing is
missing:

- outside CI, the test (or the whole module, when called at module level) is skipped, and the
  reason says what is missing, why, and the command that installs it;
- under CI (`CI` set to a true value, as `.ci/run` does) the test fails instead, so that CI cannot
  go green by not running a check. At module level that is a collection error; conftest keeps
  collecting the other modules under CI, so the rest of the suite still runs and the summary
  lists every test that could not run and why.

conftest also fails a CI session that skipped anything at all, so a `pytest.skip` or
`importorskip` that bypasses these helpers cannot hide a missing dependency either.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

MISSING = "missing dependency"  # every skip from here starts with it
TRUE = {"1", "true", "yes", "on"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in TRUE


def missing(what: str, install: str, cause: BaseException | str | None = None) -> NoReturn:
    """Skip (outside CI) or fail (under CI) because `what` is not available."""
    message = f"{what} (install: {install})"
    if cause is not None:
        detail = f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else cause
        message += f" [{detail}]"
    if in_ci():
        message += "; under CI every test must run: `make install-test` must provide it"
        pytest.fail(f"{MISSING}: {message}", pytrace=False)
    pytest.skip(f"{MISSING}: {message}", allow_module_level=True)


def require_module(name: str, install: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # also a dependency of `name` that is missing
        error = exc
    missing(f"Python module {name} is not importable", install, error)


def require_tool(name: str, install: str) -> str:
    # also next to this interpreter: pip-installed tools in a venv that is not on PATH
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        missing(f"program {name} is not on PATH", install)
    return path


def require_file(path: Path | None, what: str, install: str) -> Path:
    if path is None or not path.is_file():
        missing(f"{what} not found", install, f"looked for {path}" if path else None)
    return path
