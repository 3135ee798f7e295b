"""Which build of the mapping runs (worker/compiled.py): the choice, and what the tests import.

`make test` sets CAPI_WORKER_EXPECTED_BUILD to `compiled`, or to `pure Python` under
CAPI_WORKER_PURE_PYTHON=1, so that the whole suite is known to have run against that build.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import worker
from worker import compiled
from worker.compiled import COMPILED, MANIFEST_NAME, PURE_PYTHON, PURE_PYTHON_ENV, decide

REPO_ROOT = Path(__file__).resolve().parents[2]


# The C extension beside the mypyc modules (worker/mapping/_sha256_openssl.c): not one of them,
# and importable whichever build runs (tests/unit/test_sha256_openssl.py tests it directly).
SHA256_EXTENSION = "worker.mapping._sha256_openssl"


def _mapping_modules() -> dict[str, bool]:
    """Every loaded worker.mapping module except the package itself (and the SHA-256 extension)
    -> compiled or not."""
    import worker.pipeline  # noqa: F401 (loads the mapping the worker uses)

    return {
        name: compiled.is_compiled(module)
        for name, module in sys.modules.items()
        if name.startswith("worker.mapping.") and module is not None and name != SHA256_EXTENSION
    }


def test_the_tests_import_the_source_tree_and_the_build_make_test_expects() -> None:
    # The suite imports the checkout it lives in (editable install, modules compiled in place),
    # never another installed copy of the package.
    assert Path(worker.__file__).resolve().parent == REPO_ROOT / "worker"
    build, reason = compiled.mapping_build()
    modules = _mapping_modules()
    assert len(modules) >= 10, modules
    # Never a mix: all mapping modules compiled, or none.
    assert set(modules.values()) == {build == COMPILED}, (build, reason, modules)
    expected = os.environ.get("CAPI_WORKER_EXPECTED_BUILD")
    if expected is not None:
        assert build == expected, f"`make test` wants {expected}; runs {build}: {reason}"


def _setup_compiled_modules() -> list[str]:
    """setup.py's COMPILED_MODULES as module names (read, not imported: setup.py builds)."""
    tree = ast.parse((REPO_ROOT / "setup.py").read_text(encoding="utf-8"))
    paths = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COMPILED_MODULES"
    )
    return [path.removesuffix(".py").replace("/", ".") for path in paths]


def test_the_modules_compiled_beside_the_mapping_run_as_the_mapping_does() -> None:
    # The per-record modules outside worker/mapping (the JSON decoder, the pipeline, the
    # stream's hot path) run from the same build as the mapping: compiled with it or all pure.
    build, _ = compiled.mapping_build()
    names = _setup_compiled_modules()
    assert "worker.json_decode" in names
    loaded = {name: compiled.is_compiled(importlib.import_module(name)) for name in names}
    assert set(loaded.values()) == {build == COMPILED}, (build, loaded)


def test_pure_python_is_chosen_when_the_environment_asks(tmp_path: Path) -> None:
    _write_build(tmp_path, {"worker.mapping.rules": b"RULES = 1\n"})
    assert decide(tmp_path / "worker", {}).compiled
    choice = decide(tmp_path / "worker", {PURE_PYTHON_ENV: "1"})
    assert not choice.compiled
    assert choice.reason == f"{PURE_PYTHON_ENV}=1"
    assert decide(tmp_path / "worker", {PURE_PYTHON_ENV: "0"}).compiled


def test_a_source_edited_after_the_build_is_run_from_source(tmp_path: Path) -> None:
    package = _write_build(
        tmp_path, {"worker.mapping.rules": b"RULES = 1\n", "worker.mapping.more": b"X = 2\n"}
    )
    (package / "mapping" / "more.py").write_bytes(b"X = 3\n")
    choice = decide(package, {})
    assert not choice.compiled
    assert "older than worker/mapping/more.py" in choice.reason


def test_a_compiled_source_that_is_gone_means_pure_python(tmp_path: Path) -> None:
    package = _write_build(tmp_path, {"worker.mapping.rules": b"RULES = 1\n"})
    (package / "mapping" / "rules.py").unlink()
    assert not decide(package, {}).compiled


def test_without_a_build_record_the_mapping_is_pure_python(tmp_path: Path) -> None:
    choice = decide(tmp_path, {})
    assert not choice.compiled
    assert choice.reason == "not compiled at install"
    (tmp_path / MANIFEST_NAME).write_text("{not json", encoding="utf-8")
    assert not decide(tmp_path, {}).compiled


def test_the_compiled_mapping_hashes_with_openssl_when_built_and_the_pure_one_never() -> None:
    from worker.mapping import normalize

    build, _ = compiled.mapping_build()
    built = importlib.util.find_spec(SHA256_EXTENSION) is not None
    if build == PURE_PYTHON:
        assert normalize.SHA256_IMPLEMENTATION != "OpenSSL"  # pure means pure
    else:
        assert (normalize.SHA256_IMPLEMENTATION == "OpenSSL") is built
    if os.environ.get("CAPI_WORKER_EXPECTED_BUILD"):
        # `make install` builds it (CAPI_WORKER_COMPILE=required): a build that silently left
        # it out fails here.
        assert built, f"{SHA256_EXTENSION} is not built: `make install` builds it"


def test_the_line_names_the_build_and_why_it_is_pure_or_its_sha256() -> None:
    from worker.mapping import normalize

    line = compiled.mapping_line()
    build, reason = compiled.mapping_build()
    assert build in (COMPILED, PURE_PYTHON)
    assert line == (
        f"mapping: {build} ({reason})"
        if reason
        else f"mapping: compiled (SHA-256: {normalize.SHA256_IMPLEMENTATION})"
    )


def _write_build(root: Path, sources: dict[str, bytes]) -> Path:
    """A package directory `root/worker` holding `sources` and a build record for them."""
    package = root / "worker"
    for module, text in sources.items():
        path = root.joinpath(*module.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text)
    record = {module: hashlib.sha256(text).hexdigest() for module, text in sources.items()}
    (package / MANIFEST_NAME).write_text(json.dumps({"modules": record}), encoding="utf-8")
    return package
