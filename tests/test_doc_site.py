"""The docs site builds with `mkdocs build --strict` (a broken link, a missing anchor or
a page left out of the navigation fails it), and the README stays a short way in whose
links all lead somewhere (issue 27)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs is not installed (the `docs` extra; `make install` installs it)",
)
def test_the_docs_site_builds_strictly(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--quiet",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    pages = {
        p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")
    }
    for md in (ROOT / "docs").glob("*.md"):
        want = "index.html" if md.stem == "index" else f"{md.stem}/index.html"
        assert want in pages, f"{md.name} was not built"


def test_the_readme_fits_on_two_screens_and_says_the_four_things():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 110
    for heading in ("## Two commands", "## A first search", "## Where to go next"):
        assert heading in text
    for must in ("make demo", "make test", "$ foodvec search", "$ curl", "FoodIndex", "Client("):
        assert must in text, must


def test_the_readmes_links_lead_to_pages_and_headings_that_exist():
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(#[^)\s]*)?\)", text)
    assert links
    for target, anchor in links:
        if re.match(r"https?://", target):
            continue
        path = ROOT / target
        assert path.exists(), f"README links to {target}, which does not exist"
        if anchor:
            slugs = {_slug(h) for h in re.findall(r"^#+ (.+)$", path.read_text("utf-8"), re.M)}
            assert anchor[1:] in slugs, f"README links to {target}{anchor}: no such heading"
    linked = {t for t, _ in links}
    for page in (ROOT / "docs").glob("*.md"):
        if page.name not in ("contributing.md",):
            assert f"docs/{page.name}" in linked, f"the README does not lead to docs/{page.name}"


def _slug(heading: str) -> str:
    """Python-Markdown's toc slug, as MkDocs makes anchors."""
    s = re.sub(r"[^\w\s-]", "", heading).strip().lower()
    return re.sub(r"[-\s]+", "-", s)
