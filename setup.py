"""The build: the mapping package (and the stream's per-record modules) compiled with mypyc
where it can be, pure Python otherwise.

    pip install .                          compiled when a C compiler and the Python headers
                                           are present; else the pure-Python package and a
                                           warning (never a failed install)
    python setup.py build_ext --inplace    the compiled modules beside their sources (what
                                           `make install` does: tests import the source tree)

mypyc compiles the very `.py` files the package ships: there is no second copy of the rules.
At build time `CAPI_WORKER_COMPILE=0` skips compiling and `CAPI_WORKER_COMPILE=required` fails
instead of falling back (the Makefile, so that `make test` always tests the compiled build).
Beside the mypyc modules, and only with them, `worker/mapping/_sha256_openssl.c` is built: a
small C extension over OpenSSL's SHA-256 (libcrypto) that the compiled mapping uses for its
hash misses, about 3x faster than CPython's built-in SHA-256 on short values. It needs the
OpenSSL headers (Debian: libssl-dev). If only it fails to build, the mypyc modules are
installed without it (a warning; the mapping then hashes with CPython's `_sha256`), except
under `CAPI_WORKER_COMPILE=required`, where it is required like the rest: the Makefile, CI and
the Docker image build with it.

A successful build writes `worker/_compiled.json`: the SHA-256 of every compiled source, which
`worker/compiled.py` checks at run time so that a module edited after the build runs from its
source instead of a stale compiled copy.

Compiled code is the same code with four differences to keep in mind when editing
worker/mapping or a module of COMPILED_MODULES (the whole test suite runs compiled in
`make test`, so a slip shows there):
- annotations are enforced at run time: a parameter that may receive any decoded JSON value
  must be annotated `Any` (or `object`), not `dict[str, Any]`, or a list passed in raises;
  likewise a value read from a container typed `Mapping[str, bytes | None]` is checked
  against `bytes | None` (type such containers `Mapping[str, Any]` if anything may be in them);
- a `float` annotation (and `float | int`, which mypy reads as `float`) turns an int into a
  float: 120 becomes 120.0 in the JSON. Numbers that must keep their type are typed `Any`;
  a test double passed where a compiled class is annotated (a record, a batch) is refused:
  tests pass the real (small) objects;
- calls between compiled modules are direct: monkeypatching a mapping function in a test does
  not reach callers inside the package (patch the caller's input instead);
- a class defined in a compiled module cannot be subclassed from uncompiled code unless it is
  marked `@mypy_extensions.mypyc_attr(allow_interpreted_subclasses=True)`.

Everything else (name, dependencies, entry points) is in pyproject.toml.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

ROOT = Path(__file__).resolve().parent
# Every module of these packages is compiled, except the package's __init__.py (kept as
# source, so the package always imports and can switch to the pure path).
COMPILED_PACKAGES = ("worker/mapping",)
# And these modules of the worker's per-record path around the mapping (the JSON decoder,
# routing, the destination set read per record, the hot path's tracking and batching,
# match-quality signatures), measured to pay for it (callgrind, docs/performance.md). Their
# tests must not monkeypatch the functions they call.
COMPILED_MODULES = (
    "worker/capi/match_quality.py",
    "worker/destination_set.py",
    "worker/json_decode.py",
    "worker/pipeline.py",
    "worker/stream/batcher.py",
    "worker/stream/hot_path.py",
    "worker/stream/route_and_map.py",
    "worker/stream/watermark.py",
)
MANIFEST = "worker/_compiled.json"
COMPILE_ENV = "CAPI_WORKER_COMPILE"
SHARED_LIBRARY = "worker._mapping"  # mypyc's runtime and all the code: worker/_mapping__mypyc.*.so
# The optional C accelerator of normalize.py (see the module docstring).
SHA256_EXTENSION = Extension(
    "worker.mapping._sha256_openssl",
    sources=["worker/mapping/_sha256_openssl.c"],
    libraries=["crypto"],
)


def compiled_sources() -> list[str]:
    sources: list[str] = []
    for package in COMPILED_PACKAGES:
        sources.extend(
            path.relative_to(ROOT).as_posix()
            for path in sorted((ROOT / package).glob("*.py"))
            if path.name != "__init__.py"
        )
    sources.extend(COMPILED_MODULES)
    return sources


def _warn(message: str) -> None:
    bar = "*" * 78
    print(f"\n{bar}\nWARNING: capi-worker: {message}\n{bar}\n", file=sys.stderr)


class BuildCompiledMapping(build_ext):
    """build_ext that leaves the pure-Python package in place when the C build fails."""

    sha256_failed = False  # SHA256_EXTENSION could not be built (run() after build_extension())

    def run(self) -> None:
        if not self.extensions:
            return
        inplace = bool(self.inplace)
        if inplace:
            self._remove_orphans()
        try:
            super().run()
            if self.sha256_failed and inplace:  # not copied: no earlier build's copy either
                Path(self.get_ext_fullpath(SHA256_EXTENSION.name)).unlink(missing_ok=True)
        except (CCompilerError, ExecError, PlatformError, OSError) as error:
            self.inplace = inplace  # setuptools clears it while building
            self._remove_outputs()
            if os.environ.get(COMPILE_ENV) == "required":
                raise
            _warn(
                f"compiling the mapping failed ({type(error).__name__}: {str(error)[:300]}); "
                "installing the pure-Python package: same output, about 1.3-2x slower. "
                "Install a C compiler and the Python headers (e.g. gcc, python3-dev) to compile."
            )
            return
        self._write_manifest()

    def build_extension(self, ext: Extension) -> None:
        if ext.name != SHA256_EXTENSION.name:
            super().build_extension(ext)
            return
        try:
            super().build_extension(ext)
        except (CCompilerError, ExecError, PlatformError, OSError) as error:
            if os.environ.get(COMPILE_ENV) == "required":
                raise
            self.sha256_failed = True
            Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)  # from an earlier build
            _warn(
                f"building {ext.name} failed ({type(error).__name__}: {str(error)[:300]}); "
                "the compiled mapping hashes with CPython's built-in SHA-256 instead: same "
                "output, about 4 % slower. Install the OpenSSL headers (e.g. libssl-dev) to "
                "build it."
            )

    def _remove_orphans(self) -> None:
        """Compiled modules left in the source tree by an earlier build whose source has since
        moved or gone: they would still be importable under the old name."""
        directories = {*COMPILED_PACKAGES, *(Path(module).parent for module in COMPILED_MODULES)}
        for directory in directories:
            for compiled in (ROOT / directory).glob("*.so"):
                stem = compiled.name.split(".")[0]
                if not any(compiled.with_name(stem + suffix).exists() for suffix in (".py", ".c")):
                    compiled.unlink()

    def _manifest_path(self) -> Path:
        # The package directory the extensions are written to: the source tree with --inplace,
        # build/lib.* otherwise (from where the wheel takes it).
        first = self.extensions[0].name
        package_dir = Path(self.get_ext_fullpath(first)).parents[first.count(".") - 1]
        return package_dir / Path(MANIFEST).name

    def _write_manifest(self) -> None:
        self._manifest_path().write_text(
            json.dumps({"compiler": "mypyc", "modules": COMPILED_DIGESTS}, indent=1) + "\n",
            encoding="utf-8",
        )

    def _remove_outputs(self) -> None:
        """A partial build (some modules compiled, the shared library not) must not be left
        behind: its modules would fail to import."""
        inplace = bool(self.inplace)
        for mode in {inplace, False}:
            self.inplace = mode
            for extension in self.extensions:
                Path(self.get_ext_fullpath(extension.name)).unlink(missing_ok=True)
            self._manifest_path().unlink(missing_ok=True)
        self.inplace = inplace


# Module -> SHA-256 of the source mypyc compiled: taken before compiling, so that a file edited
# during the build is recorded as different from what was compiled.
COMPILED_DIGESTS: dict[str, str] = {}


def extensions() -> list[Extension]:
    mode = os.environ.get(COMPILE_ENV, "")
    if mode == "0":
        return []
    for source in compiled_sources():
        module = source[: -len(".py")].replace("/", ".")
        COMPILED_DIGESTS[module] = hashlib.sha256((ROOT / source).read_bytes()).hexdigest()
    try:
        from mypyc.build import mypycify

        compiled = mypycify(compiled_sources(), group_name=SHARED_LIBRARY, opt_level="3")
    except (Exception, SystemExit) as error:  # mypyc missing, or it refused the code
        if mode == "required":
            raise
        _warn(f"mypyc could not compile the mapping ({error}); installing pure Python.")
        return []
    # Built last: if the C compiler fails altogether, the mypyc modules fail first and the
    # build falls back to pure Python as a whole. Optional: if it alone fails, setuptools copies
    # the rest in place without it.
    SHA256_EXTENSION.optional = mode != "required"
    return [*compiled, SHA256_EXTENSION]


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildCompiledMapping})
