"""The documentation: README.md is a short front door, the reference lives in docs/, and every
relative link and #anchor between them resolves the way GitHub renders them.

Markdown is parsed with markdown-it-py (CommonMark), so links inside code blocks and inline code
are not links, as on GitHub. Anchors are GitHub's heading slugs: the heading's text lowercased,
everything but letters, digits, `_`, `-` and spaces removed, spaces turned into `-`, and `-1`,
`-2`... appended to repeated slugs.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 450

# The checked files: the front door, the reference, and the other READMEs they link to.
CHECKED = [
    README,
    *sorted(DOCS.glob("*.md")),
    ROOT / "helm/capi-worker/README.md",
    ROOT / "schemas/README.md",
]

# The reference pages the front door promises (issue 11): each must exist and be linked from it.
REFERENCE_PAGES = [
    "configuration.md",
    "mapping.md",
    "operations.md",
    "deployment.md",
    "performance.md",
    "architecture.md",
    "emulator.md",
]

_markdown = MarkdownIt("commonmark").enable("table")


def github_slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _tokens(path: Path) -> list[Token]:
    return _markdown.parse(path.read_text(encoding="utf-8"))


def _inline_text(token: Token) -> str:
    children = token.children or []
    return "".join(child.content for child in children if child.type in ("text", "code_inline"))


@cache
def anchors(path: Path) -> frozenset[str]:
    tokens = _tokens(path)
    seen: dict[str, int] = {}
    result = set()
    for opening, inline in itertools.pairwise(tokens):
        if opening.type != "heading_open":
            continue
        slug = github_slug(_inline_text(inline))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(result)


def _links(path: Path) -> Iterator[str]:
    def walk(tokens: list[Token]) -> Iterator[str]:
        for token in tokens:
            if token.type == "link_open":
                yield str(token.attrs["href"])
            if token.type == "image":
                yield str(token.attrs["src"])
            yield from walk(token.children or [])

    yield from walk(_tokens(path))


def _relative_links() -> Iterator[tuple[Path, str]]:
    for path in CHECKED:
        for href in _links(path):
            if urlsplit(href).scheme:  # https:, mailto:
                continue
            yield path, href


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _broken(path: Path, href: str) -> str | None:
    parts = urlsplit(href)
    target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
    if not target.exists():
        return f"{_shown(target)} does not exist"
    if parts.fragment:
        if target.suffix != ".md":
            return f"an anchor into {target.name}, which is not Markdown"
        if unquote(parts.fragment) not in anchors(target):
            return f"no heading in {_shown(target)} has the anchor #{parts.fragment}"
    return None


def test_github_slugs_match_githubs_rules() -> None:
    assert github_slug("Several processes: `--processes N`") == "several-processes---processes-n"
    assert github_slug("Dead-letter runbook: inspect, find the cause, fix, redrive") == (
        "dead-letter-runbook-inspect-find-the-cause-fix-redrive"
    )
    assert github_slug("Sizing: partitions, replicas") == "sizing-partitions-replicas"
    assert github_slug("1. Look: `dlq stats`") == "1-look-dlq-stats"
    assert github_slug("Backfill (replay)") == "backfill-replay"


def test_the_checker_sees_links_and_anchors(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n## Two words\n\n## Two words\n\n"
        "[a](#two-words-1) [b](#missing) [c](other.md) `[d](nowhere.md)`\n\n"
        "```\n[e](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    assert list(_links(page)) == ["#two-words-1", "#missing", "other.md"]
    assert anchors(page) == {"title", "two-words", "two-words-1"}
    assert _broken(page, "#two-words-1") is None
    assert _broken(page, "#missing") is not None
    assert _broken(page, "other.md") is not None


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    broken = [
        f"{href}: {why}"
        for source, href in _relative_links()
        if source == path and (why := _broken(path, href))
    ]
    assert broken == []


def test_the_readme_is_a_front_door() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES
    linked = {href for href in _links(README)}
    for page in REFERENCE_PAGES:
        assert (DOCS / page).is_file(), page
        assert f"docs/{page}" in linked, f"README.md does not link docs/{page}"


def test_the_readme_test_command_is_what_ci_runs() -> None:
    """The README's set-up promise and CI run the same command."""
    ci = (ROOT / ".ci/run").read_text(encoding="utf-8").splitlines()
    commands = [
        line.strip()
        for line in ci
        if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))
    ]
    assert commands == ["make test"]
    readme = README.read_text(encoding="utf-8")
    two_commands = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    block = two_commands.split("```sh\n", 1)[1].split("```", 1)[0]
    run = [shlex.split(line, comments=True) for line in block.splitlines()]
    assert ["make", "test"] in run
    assert ["make", "demo"] in run
