"""Which build of the mapping runs: the mypyc-compiled modules or their pure-Python sources.

`setup.py` compiles the mapping package with mypyc when it can and records, in
`worker/_compiled.json`, the SHA-256 of every source it compiled. A compiled module sits beside
its `.py` file and Python's import system prefers it. The pure path is chosen instead when

- `CAPI_WORKER_PURE_PYTHON=1` is set (to compare, or to rule the compiled code out), or
- a compiled source changed after the build (a stale build is never run: `make install`
  rebuilds it), or there is no build record.

The choice is made once, when `worker` is first imported (`install()`, called by
`worker/__init__.py`), before any mapping module is: for the pure path a finder placed first on
`sys.meta_path` loads every `worker.*` module from its `.py` file, so compiled and pure modules
are never mixed in one process. Only the standard library is imported here.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

PURE_PYTHON_ENV = "CAPI_WORKER_PURE_PYTHON"
MANIFEST_NAME = "_compiled.json"
COMPILED = "compiled"
PURE_PYTHON = "pure Python"
# The module whose origin says which build runs: it holds `map_event`.
PROBE_MODULE = "worker.mapping.event"
# The module that hashes, and names its SHA-256 in SHA256_IMPLEMENTATION.
HASHING_MODULE = "worker.mapping.normalize"

_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Choice:
    """What `install()` decided: `compiled` wanted or not, and why not."""

    compiled: bool
    reason: str


class SourceFinder(importlib.abc.MetaPathFinder):
    """Finds `worker.*` modules as `.py` sources even where a compiled module sits beside one."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("worker.") or not path:
            return None
        name = fullname.rpartition(".")[2]
        for entry in path:
            package_init = os.path.join(entry, name, "__init__.py")
            if os.path.isfile(package_init):
                return importlib.util.spec_from_file_location(
                    fullname, package_init, submodule_search_locations=[os.path.join(entry, name)]
                )
            source = os.path.join(entry, name + ".py")
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None


_choice: Choice | None = None


def decide(package_dir: Path = _PACKAGE_DIR, environ: dict[str, str] | None = None) -> Choice:
    """Compiled or pure, from the environment and the build record in `package_dir`."""
    environ = dict(os.environ) if environ is None else environ
    if environ.get(PURE_PYTHON_ENV, "").strip() not in ("", "0"):
        return Choice(False, f"{PURE_PYTHON_ENV}={environ[PURE_PYTHON_ENV]}")
    manifest = package_dir / MANIFEST_NAME
    try:
        modules = json.loads(manifest.read_text(encoding="utf-8"))["modules"]
    except FileNotFoundError:
        return Choice(False, "not compiled at install")
    except (OSError, ValueError, KeyError, TypeError):
        return Choice(False, f"unreadable build record {MANIFEST_NAME}")
    for module, digest in modules.items():
        source = package_dir.parent.joinpath(*module.split(".")).with_suffix(".py")
        try:
            current = hashlib.sha256(source.read_bytes()).hexdigest()
        except OSError:
            current = None
        if current != digest:
            where = source.relative_to(package_dir.parent).as_posix()
            return Choice(False, f"the compiled build is older than {where}: run `make install`")
    return Choice(True, "")


def install() -> Choice:
    """Decide once per process; for the pure path, put the source finder first."""
    global _choice
    if _choice is None:
        _choice = decide()
        if not _choice.compiled and not any(isinstance(f, SourceFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, SourceFinder())
    return _choice


def is_compiled(module: ModuleType) -> bool:
    """True when `module` was loaded from a C extension."""
    origin = getattr(module.__spec__, "origin", None) or ""
    return origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def mapping_build() -> tuple[str, str]:
    """(`compiled` or `pure Python`, why pure): what the mapping of this process runs, read
    from the module actually imported, not only from what was wanted."""
    choice = install()
    if is_compiled(importlib.import_module(PROBE_MODULE)):
        return COMPILED, ""
    return PURE_PYTHON, choice.reason if not choice.compiled else "compiled module not found"


def mapping_line() -> str:
    """`mapping: compiled (SHA-256: <which>)`, or `mapping: pure Python (<why>)`: for the
    start-up log, `capi-worker --version` and the bench. The compiled mapping hashes with the
    OpenSSL C extension when it was built (`SHA-256: OpenSSL`), else with CPython's own; the
    pure path always with CPython's own."""
    build, reason = mapping_build()
    if reason:
        return f"mapping: {build} ({reason})"
    sha256 = importlib.import_module(HASHING_MODULE).SHA256_IMPLEMENTATION
    return f"mapping: {build} (SHA-256: {sha256})"
