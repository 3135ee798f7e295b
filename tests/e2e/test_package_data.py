"""The installed package carries its default Avro schema: `pip install .` anywhere, without the
repository's schemas/ beside it, and the default `decoding.avro_schema` is found and decodes."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.avro import encode_avro
from tests.support.package import REPO_ROOT, copy_sources

SCHEMA_IN_WHEEL = "worker/schemas/segment_event.avsc"

CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
import worker.config as config
from worker.decode import build_decoder
path = config.DEFAULT_AVRO_SCHEMA
assert str(path).startswith(sys.argv[1]), path
assert path.is_file(), path
decoder = build_decoder(config.DecodingSettings(format="avro"))
print(path, decoder(bytes.fromhex(sys.argv[2])))
"""


def test_the_installed_package_finds_and_uses_its_avro_schema(tmp_path: Path) -> None:
    source = copy_sources(tmp_path / "src")
    env = {**os.environ, "CAPI_WORKER_COMPILE": "0"}  # the pure build: this is about data
    pip = (sys.executable, "-m", "pip")
    built = subprocess.run(
        [*pip, "wheel", "--no-build-isolation", "--no-deps", "-w", str(tmp_path / "dist"), source],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, (built.stdout + built.stderr)[-4000:]
    (wheel,) = (tmp_path / "dist").glob("capi_worker-*.whl")
    assert SCHEMA_IN_WHEEL in zipfile.ZipFile(wheel).namelist()

    site = tmp_path / "site"
    installed = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert installed.returncode == 0, (installed.stdout + installed.stderr)[-4000:]

    # {"type": "page"} as a schemaless datum of the default schema, every other field null.
    datum = encode_avro({"type": "page"}, REPO_ROOT / SCHEMA_IN_WHEEL).hex()
    elsewhere = tmp_path / "elsewhere"  # not the repository: nothing to find by accident
    elsewhere.mkdir()
    ran = subprocess.run(
        [sys.executable, "-I", "-c", CHECK, str(site), datum],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-4000:]
    assert ran.stdout.startswith(str(site / "worker" / "schemas" / "segment_event.avsc"))
    assert "{'type': 'page'}" in ran.stdout
