"""The compiled mapping and its pure-Python fallback, as a user meets them (setup.py,
worker/compiled.py): same output byte for byte, the build named at start-up and by --version,
CAPI_WORKER_PURE_PYTHON=1 honoured, and an install without a C compiler that still succeeds.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.golden.runner import KAFKA_SECTION, load_cases
from tests.support.package import copy_sources
from worker.bench.corpus import Corpus
from worker.bench.mapping_stage import bench_settings
from worker.compiled import COMPILED, PURE_PYTHON_ENV, mapping_build
from worker.sandbox.broker import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "worker.cli"]
CORPUS_EVENTS = 20_000
NOW = 1_780_000_000.0


def _env(pure: bool) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != PURE_PYTHON_ENV}
    if pure:
        env[PURE_PYTHON_ENV] = "1"
    return env


def _require_compiled_build() -> None:
    """The comparisons need both builds. Under `make test` a missing compiled build fails."""
    if mapping_build()[0] == COMPILED or os.environ.get(PURE_PYTHON_ENV):
        probe = subprocess.run(
            [*CLI, "--version"], env=_env(False), capture_output=True, text=True, timeout=60
        )
        if "mapping: compiled" in probe.stdout:
            return
    if os.environ.get("CAPI_WORKER_EXPECTED_BUILD"):  # `make test`: it must have been built
        pytest.fail("no compiled mapping to compare with: `make install` builds it")
    pytest.skip("no compiled build in this checkout (`make install` builds it)")


def _transform(config: Path, lines: bytes, now: float, pure: bool) -> bytes:
    done = subprocess.run(
        [*CLI, "transform", "--config", str(config), "--now", repr(now)],
        input=lines,
        env=_env(pure),
        capture_output=True,
        timeout=300,
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def _destinations() -> list[dict[str, Any]]:
    """The bench's destination, as configuration."""
    settings = bench_settings().model_dump(mode="json")
    return [{**d, "access_token": "bench-token"} for d in settings["destinations"]]


def _assert_identical(compiled_out: bytes, pure_out: bytes, what: str) -> None:
    if compiled_out == pure_out:
        return
    for number, (left, right) in enumerate(
        zip(compiled_out.splitlines(), pure_out.splitlines(), strict=False), 1
    ):
        assert left == right, (
            f"{what}, output line {number}:\ncompiled {left!r}\npure     {right!r}"
        )
    assert len(compiled_out.splitlines()) == len(pure_out.splitlines()), what


def test_compiled_and_pure_transform_are_byte_identical_on_the_bench_corpus(
    tmp_path: Path,
) -> None:
    _require_compiled_build()
    config = tmp_path / "bench.yaml"
    config.write_text(yaml.safe_dump({"kafka": KAFKA_SECTION, "destinations": _destinations()}))
    corpus = Corpus(CORPUS_EVENTS, seed=7, now=NOW, prefix="parity")
    lines = b"".join(record.value.replace(b"\n", b" ") + b"\n" for record in corpus)

    compiled_out = _transform(config, lines, NOW, pure=False)
    pure_out = _transform(config, lines, NOW, pure=True)

    assert compiled_out.count(b'"event"') >= corpus.valid_count
    _assert_identical(compiled_out, pure_out, "bench corpus")


def test_compiled_and_pure_transform_are_byte_identical_on_mutated_events(tmp_path: Path) -> None:
    """Corpus events with random leaves replaced by values of other types (ints as floats and
    strings, huge ints, lists, objects, blanks): where a compiled module could coerce a number
    or refuse an argument its annotation does not allow, the pure one would not."""
    _require_compiled_build()
    config = tmp_path / "bench.yaml"
    config.write_text(yaml.safe_dump({"kafka": KAFKA_SECTION, "destinations": _destinations()}))
    rng = random.Random(11)
    events = [
        orjson.loads(record.value)
        for record in Corpus(1_000, seed=3, now=NOW)
        if not record.invalid
    ]
    lines = b"".join(
        json.dumps(_mutate(copy.deepcopy(event), rng)).encode() + b"\n"
        for event in events
        for _ in range(4)
    )

    compiled_out = _transform(config, lines, NOW, pure=False)
    pure_out = _transform(config, lines, NOW, pure=True)

    assert compiled_out.count(b'"error"') > 100  # the mutations do reach the checks
    _assert_identical(compiled_out, pure_out, "mutated events")


_ODD_VALUES: tuple[Any, ...] = (
    0,
    1,
    -1,
    120,
    120.0,
    19.999,
    1e300,
    -0.0,
    2**63,
    10**25,
    "120",
    "12.5",
    " 7 ",
    "",
    "  ",
    "abc",
    "1e3",
    "١٢٣",
    True,
    False,
    None,
    [],
    [1, "a"],
    {},
    {"a": 1},
    "x" * 300,
    "\u00e9t\u00e9",
    1_700_000_000,
    "1700000000",
    1_700_000_000_000,
    "2026-11-30T12:00:00Z",
)


def _mutate(node: Any, rng: random.Random) -> Any:
    """Replace about one leaf in six, recursively, by one of `_ODD_VALUES`."""
    if isinstance(node, dict):
        for key in list(node):
            node[key] = _mutate(node[key], rng)
        return node
    if isinstance(node, list):
        return [_mutate(item, rng) for item in node]
    return rng.choice(_ODD_VALUES) if rng.random() < 1 / 6 else node


def test_compiled_and_pure_transform_are_byte_identical_on_the_golden_cases(
    tmp_path: Path,
) -> None:
    _require_compiled_build()
    groups: dict[float, list[Any]] = {}
    for case in load_cases():
        groups.setdefault(case.now, []).append(case)
    for index, (now, cases) in enumerate(sorted(groups.items())):
        # Every input line through every destination of the group: more pairs than the
        # golden files pin, all of them compared.
        destinations = [
            {**destination, "name": f"{number}-{destination['name']}"}
            for number, case in enumerate(cases)
            for destination in case.destinations
        ]
        config = tmp_path / f"golden-{index}.yaml"
        config.write_text(yaml.safe_dump({"kafka": KAFKA_SECTION, "destinations": destinations}))
        lines = b"".join(case.line + b"\n" for case in cases)

        compiled_out = _transform(config, lines, now, pure=False)
        pure_out = _transform(config, lines, now, pure=True)

        assert len(compiled_out.splitlines()) >= len(cases) * len(destinations) // 2
        _assert_identical(compiled_out, pure_out, f"golden cases at now={now}")


def test_version_names_the_mapping_build() -> None:
    pure = subprocess.run(
        [*CLI, "--version"], env=_env(True), capture_output=True, text=True, timeout=60
    )
    assert pure.returncode == 0
    assert pure.stdout.startswith("capi-worker ")
    assert f"mapping: pure Python ({PURE_PYTHON_ENV}=1)" in pure.stdout

    default = subprocess.run(
        [*CLI, "--version"], env=_env(False), capture_output=True, text=True, timeout=60
    )
    expected = os.environ.get("CAPI_WORKER_EXPECTED_BUILD")
    if expected and not os.environ.get(PURE_PYTHON_ENV):
        assert f"mapping: {expected}" in default.stdout
    else:
        assert "mapping: compiled" in default.stdout or "mapping: pure Python" in default.stdout


def test_pure_python_environment_loads_no_compiled_module() -> None:
    probe = (
        "import sys, importlib.machinery as m\n"
        "import worker.pipeline, worker.cli\n"
        "print([n for n, mod in sys.modules.items() if getattr(mod, '__file__', None)"
        " and n.startswith('worker') and mod.__spec__.origin.endswith("
        "tuple(m.EXTENSION_SUFFIXES))])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=_env(True), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_run_logs_which_mapping_build_it_runs_at_start_up(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {**KAFKA_SECTION, "bootstrap_servers": f"127.0.0.1:{free_port()}"},
                "metrics": {"enabled": False},
                "destinations": [{"name": "shop", "pixel_id": "1", "access_token": "t"}],
            }
        )
    )
    process = subprocess.Popen(
        [*CLI, "run", "--config", str(config), "--log-format", "json"],
        env=_env(True),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    messages: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            try:
                messages.append(json.loads(line)["message"])
            except (ValueError, KeyError, TypeError):
                messages.append(line)
            if messages[-1].startswith("mapping: "):
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert seen.wait(timeout=120), messages
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        reader.join(timeout=30)
    assert f"mapping: pure Python ({PURE_PYTHON_ENV}=1)" in messages


def _build_wheel(tmp_path: Path, environ: dict[str, str]) -> tuple[Path, str]:
    """`pip wheel` of a copy of the sources, as a user's `pip install .` builds it, with
    `environ` added to the environment: the wheel, and pip's output with setup.py's."""
    source = copy_sources(tmp_path / "src")
    env = {key: value for key, value in os.environ.items() if key != "CAPI_WORKER_COMPILE"}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps"),
            *("--verbose", "--wheel-dir", str(tmp_path / "dist"), str(source)),
        ],
        env={**env, **environ},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    (wheel,) = (tmp_path / "dist").glob("capi_worker-*.whl")
    return wheel, output


def test_install_without_a_c_compiler_gives_the_pure_package_and_a_warning(
    tmp_path: Path,
) -> None:
    # A compiler that fails every call: as good as none.
    wheel, output = _build_wheel(tmp_path, {"CC": "/bin/false"})
    assert "WARNING: capi-worker: compiling the mapping failed" in output
    names = zipfile.ZipFile(wheel).namelist()
    assert "worker/mapping/event.py" in names
    assert "worker/compiled.py" in names
    assert not [name for name in names if name.endswith(".so")], names
    assert "worker/_compiled.json" not in names


def test_install_without_openssl_headers_compiles_the_mapping_without_the_sha256_extension(
    tmp_path: Path,
) -> None:
    """Only worker/mapping/_sha256_openssl.c fails (its header is an #error here): the mypyc
    modules are built and installed all the same, with a warning, and hash with CPython's
    SHA-256. (A full compile of the mapping: a minute or two.)"""
    include = tmp_path / "include"
    (include / "openssl").mkdir(parents=True)
    (include / "openssl" / "sha.h").write_text('#error "no OpenSSL headers on this machine"\n')
    # -I of CFLAGS is searched before the system's headers.
    wheel, output = _build_wheel(tmp_path, {"CFLAGS": f"-I{include}"})
    assert "WARNING: capi-worker: building worker.mapping._sha256_openssl failed" in output
    assert "compiling the mapping failed" not in output
    installed = tmp_path / "installed"
    zipfile.ZipFile(wheel).extractall(installed)
    names = {path.relative_to(installed).as_posix() for path in installed.rglob("*")}
    assert "worker/_compiled.json" in names
    assert any(name.startswith("worker/mapping/event.") and name.endswith(".so") for name in names)
    assert not [name for name in names if "_sha256_openssl" in name and name.endswith(".so")]

    probe = (
        f"import sys; sys.path.insert(0, {str(installed)!r})\n"
        "import worker, worker.compiled as c, worker.mapping.normalize as n\n"
        f"assert worker.__file__.startswith({str(installed)!r}), worker.__file__\n"
        "print(c.mapping_line()); print(n.normalize_and_hash('em', ' Jane@Example.com'))\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe],
        env=_env(False),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        "mapping: compiled (SHA-256: CPython)",
        hashlib.sha256(b"jane@example.com").hexdigest(),
    ]
