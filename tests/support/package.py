"""The project's sources copied out of the repository, to build a wheel from."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def copy_sources(destination: Path) -> Path:
    """setup.py, pyproject.toml, README.md and worker/ (no build outputs) into `destination`."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, destination / name)
    shutil.copytree(
        REPO_ROOT / "worker",
        destination / "worker",
        ignore=shutil.ignore_patterns("*.so", "__pycache__", "_compiled.json"),
    )
    return destination
