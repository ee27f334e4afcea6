"""The project's account of the paper lives in the repository, and every link into it resolves.

- No tracked file cites the working notes outside the repository (PAPER.md, DESIGN.md or anything
  under ../shared other than the default data root ../shared/data, which is a path the code reads,
  not a citation).
- Every `README.md#anchor` and `docs/<page>.md#anchor` link used anywhere (library, notebooks,
  tests, README, docs) and every in-page `#anchor` link of those pages resolves to a heading, with
  GitHub's anchor rules.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAPER = REPO / "docs" / "paper.md"
THIS = Path(__file__).resolve()

FORBIDDEN = re.compile(r"PAPER\.md|DESIGN\.md|\.\./shared/(?!data/)|shared/docs")  # case matters: docs/paper.md is ours
PAGES = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))  # the markdown documentation
IN_PAGE_LINK = re.compile(r"\]\(#([A-Za-z0-9_\-]+)\)")
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".txt", ".toml", ".yml", ".yaml", ".sh", ".cfg", ".ini", ".json", ".csv"}


def tracked_files() -> list[Path]:
    """Files git tracks (plus untracked, not ignored ones), or every file outside .git and .venv without git."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split("\n")
        files = [REPO / f for f in out if f]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in REPO.rglob("*") if not {".git", ".venv"} & set(p.relative_to(REPO).parts)]
    return sorted(p for p in files if p.is_file() and p.suffix in TEXT_SUFFIXES)


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def github_anchor(heading: str) -> str:
    """GitHub's heading id: lowercase, punctuation dropped (except - and _), spaces to '-'."""
    text = re.sub(r"`|\*\*|\[|\]\([^)]*\)", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Anchors of a markdown file's headings (fenced code skipped; repeated headings get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    fenced = False
    for line in markdown.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not m:
            continue
        base = github_anchor(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_github_anchor_rules():
    assert github_anchor("Step 3: CMCL") == "step-3-cmcl"
    assert github_anchor("Reference numbers (cited, not measured)") == "reference-numbers-cited-not-measured"
    assert github_anchor("D3: memory of the dimension cost") == "d3-memory-of-the-dimension-cost"
    assert github_anchor("`recgoat_lib` and the paper") == "recgoat_lib-and-the-paper"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_paper_account_exists_with_the_pipeline_sections():
    assert PAPER.exists(), "docs/paper.md, the project's own account of the paper, is missing"
    have = anchors(read(PAPER))
    for step in ("step-1-lm-representations", "step-2-graph-attention", "step-3-cmcl", "step-4-oat",
                 "step-5-prediction-and-loss", "departures-of-the-released-code",
                 "theory-checked-in-notebook-06", "reference-numbers-cited-not-measured"):
        assert step in have, f"docs/paper.md lacks the section #{step}"


def test_nothing_cites_notes_outside_the_repository():
    hits = []
    for path in tracked_files():
        if path.resolve() == THIS:
            continue
        for n, line in enumerate(read(path).split("\n"), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:100]}")
    assert not hits, "cite docs/paper.md instead of notes outside the repository:\n" + "\n".join(hits)


def link_pattern(page: Path) -> re.Pattern:
    """Links into `page` by its file name (`paper.md#x`, `../README.md#x`, `docs/performance.md#x`)."""
    return re.compile(re.escape(page.name) + r"#([A-Za-z0-9_\-]+)")


@pytest.mark.parametrize("target", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_anchor_link_resolves(target):
    pattern = link_pattern(target)
    have = anchors(read(target))
    broken = []
    for path in tracked_files():
        if path.resolve() == THIS:
            continue
        text = read(path)
        links = set(pattern.findall(text))
        if path.resolve() == target.resolve():
            links |= set(IN_PAGE_LINK.findall(text))
        broken += [f"{path.relative_to(REPO)}: #{a}" for a in sorted(links - have)]
    assert not broken, f"links to headings that {target.name} does not have:\n" + "\n".join(broken)


def test_every_relative_file_link_in_the_markdown_docs_exists():
    """`![...](figures/x.png)` and `[...](docs/y.md)` in README.md and docs/*.md point at files in the
    repository (a renamed figure would otherwise leave a broken image on the front page)."""
    broken = []
    for doc in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", read(doc)):
            if "://" not in target and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)
