"""Every command example in the docs runs against the sample corpus (issue 27), as
sqlite-utils tests its docs. The conventions are those of docs/contributing.md:

- A ```console block holds commands, each on a line starting with `$ ` (a line ending
  in `\\` goes on), and under each command lines of what it prints: each must match a
  line of its output, in order, where `...` stands for anything and runs of spaces for
  any white space; lines of output not shown are skipped. A command must show at least
  one line, unless it is an `export`.
- A ```pycon block is a doctest (`>>> `, `... `, then the expected output; ELLIPSIS and
  NORMALIZE_WHITESPACE are on).
- `<!-- not run: REASON -->` on the line before a block leaves it out; NOT_RUN below
  lists every such block, so that the set stays small and explicit.

Each page runs in a working folder of its own, holding `indexer/` (a link to the
package, for `indexer/data/sample_foods.csv`) and the home `.foodvec`, already built
from the sample corpus. Every model is the fake embedder (tests/fakes.py): outputs that
are about the model are elided with `...` in the docs. The commands run in the page's
order: `foodvec ...` in process (CliRunner), `foodvec serve ...` as a server process
(tests/servers.py; its start-up block is what is matched), `curl ...` as a process
against that server (`127.0.0.1:8000` is rewritten to its port), `export NAME=VALUE`
sets a variable. `$PWD` is the only variable expanded.
"""

from __future__ import annotations

import doctest
import io
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import ROOT, SAMPLE
from tests.fakes import FakeEmbedder

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
DOC_URL = "127.0.0.1:8000"

# Blocks marked `<!-- not run: REASON -->`: (page, reason). Nothing else is left out.
NOT_RUN = {
    ("README.md", "make: sets up .venv and trains the model (minutes); make test is this suite"),
    ("docs/index.md", "installs packages from PyPI"),
    ("docs/model.md", "trains or evaluates the real model (minutes)"),
    ("docs/scale-out.md", "needs a PostgreSQL server"),
    ("docs/scale-out.md", "needs several machines, a PostgreSQL server and a load balancer"),
    ("docs/scale-out.md", "needs a Ray cluster"),
    ("docs/benchmarks.md", "benchmarks: minutes to an hour each (make bench)"),
}


@dataclass
class Block:
    page: str
    lang: str
    lineno: int  # of the first line inside the fence
    text: str
    not_run: str | None


@dataclass
class Command:
    source: str
    lineno: int
    expected: list[str] = field(default_factory=list)


FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
NOT_RUN_MARK = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->\s*$")


def page_name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = NOT_RUN_MARK.search(before)
        out.append(
            Block(
                page_name(path),
                m.group(1),
                text.count("\n", 0, m.start(2)) + 1,
                m.group(2),
                mark.group(1) if mark else None,
            )
        )
    return out


def commands(block: Block) -> list[Command]:
    out: list[Command] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            source, start = line[2:], i
            while source.endswith("\\") and i + 1 < len(lines):
                i += 1
                source = source[:-1] + " " + lines[i].strip()
            out.append(Command(source.strip(), block.lineno + start))
        elif out:
            out[-1].expected.append(line)
        else:
            raise AssertionError(f"{block.page}:{block.lineno + i}: output before any `$ ` command")
        i += 1
    return out


def line_pattern(expected: str) -> re.Pattern:
    """`...` is anything, a run of white space any white space; the whole line."""
    words = expected.strip().split()
    parts = [".*?".join(re.escape(p) for p in w.split("...")) for w in words]
    return re.compile(r"\s+".join(parts).replace(r"\s+.*?\s+", r"\s+(?:.*?\s+)?"))


def check_output(cmd: Command, page: str, output: str, url: str | None = None) -> None:
    got = [ln.strip() for ln in re.split(r"[\r\n]", output)]
    at = 0
    for want in cmd.expected:
        if want.strip() in ("", "..."):
            continue
        if url:
            want = want.replace(DOC_URL, url)
        pattern = line_pattern(want)
        while at < len(got) and not pattern.fullmatch(got[at]):
            at += 1
        assert at < len(got), (
            f"{page}:{cmd.lineno}: `{cmd.source}` did not print, in order:\n  {want.strip()}\n"
            f"it printed:\n{output}"
        )
        at += 1


# -- the rules of the convention --------------------------------------------------------
ALL_BLOCKS = [b for p in PAGES for b in blocks(p)]
COMMAND_LINE = re.compile(r"^\s*(\$ |>>> |foodvec |curl |\.venv/bin/foodvec )")


def test_the_blocks_left_out_are_exactly_the_listed_ones():
    marked = {(b.page, b.not_run) for b in ALL_BLOCKS if b.not_run}
    assert marked == NOT_RUN
    assert all(b.lang == "console" for b in ALL_BLOCKS if b.not_run)


def test_no_command_hides_outside_a_block_that_runs():
    for b in ALL_BLOCKS:
        if b.lang in ("console", "pycon"):
            continue
        for n, line in enumerate(b.text.splitlines()):
            assert not COMMAND_LINE.match(line), (
                f"{b.page}:{b.lineno + n}: a command in a ```{b.lang or 'plain'} block is never "
                "run: put it in a ```console or ```pycon block"
            )
        assert b.lang != "python", f"{b.page}:{b.lineno}: write examples as ```pycon (doctest)"


def test_every_command_shows_some_of_its_output():
    for b in ALL_BLOCKS:
        if b.lang != "console" or b.not_run:
            continue
        for cmd in commands(b):
            if not cmd.source.startswith("export "):
                assert any(w.strip() not in ("", "...") for w in cmd.expected), (
                    f"{b.page}:{cmd.lineno}: `{cmd.source}` shows nothing of what it prints"
                )
    for b in ALL_BLOCKS:
        if b.lang == "pycon":
            examples = doctest.DocTestParser().get_examples(b.text)
            assert examples and any(e.want.strip() for e in examples), (
                f"{b.page}:{b.lineno}: a ```pycon block that checks no output"
            )


def test_the_line_pattern_matches_what_it_should_and_nothing_else():
    p = line_pattern("1. ... k131  김치: ...")
    assert p.fullmatch("1. 0.4391  k131  김치: 유산균 풍부")
    assert not p.fullmatch("1. 0.4391  k132  김치: 유산균 풍부")
    assert line_pattern("a ... b").fullmatch("a b") and line_pattern("a ... b").fullmatch("a x y b")
    assert not line_pattern("items 234").fullmatch("items 2345")
    cmd = Command("foodvec x", 1, ["one", "...", "three"])
    check_output(cmd, "p", "one\ntwo\nthree\n")
    with pytest.raises(AssertionError):
        check_output(cmd, "p", "three\none\n")


# -- running a page ---------------------------------------------------------------------
class Page:
    def __init__(self, path: Path, work: Path, monkeypatch):
        self.name = page_name(path)
        self.work = work
        self.home = work / ".foodvec"
        self.monkeypatch = monkeypatch
        self.server = None
        self.globs: dict = {"__name__": "__docs__"}
        self.ran = 0

    @property
    def url(self) -> str | None:
        return f"127.0.0.1:{self.server.port}" if self.server else None

    def expand(self, token: str) -> str:
        return token.replace("$PWD", str(self.work))

    def run_console(self, block: Block) -> None:
        for cmd in commands(block):
            words = [self.expand(w) for w in shlex.split(cmd.source, comments=True)]
            env = {}
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                name, value = words.pop(0).split("=", 1)
                env[name] = value
            where = f"{self.name}:{cmd.lineno}: `{cmd.source}`"
            if words[0] == "export":
                for assignment in words[1:]:
                    name, value = assignment.split("=", 1)
                    self.monkeypatch.setenv(name, value)
            elif words[:2] == ["foodvec", "serve"]:
                self.serve(cmd, words[2:], env, where)
            elif words[0] == "foodvec":
                self.foodvec(cmd, words[1:], env, where)
            elif words[0] == "curl":
                self.curl(cmd, words[1:], where)
            else:
                raise AssertionError(f"{where}: the docs tests do not know how to run this")
            self.ran += 1

    def foodvec(self, cmd: Command, args: list[str], env: dict, where: str) -> None:
        from search.cli import cli

        res = CliRunner().invoke(cli, args, prog_name="foodvec", env=env or None)
        assert res.exit_code == 0, (
            f"{where} exited {res.exit_code}:\n{res.output}\n{res.exception!r}"
        )
        # stdout and stderr as a terminal shows them; but a progress bar on stderr may
        # run into the next line of stdout there, so stdout then stderr also counts
        try:
            check_output(cmd, self.name, res.output)
        except AssertionError:
            check_output(cmd, self.name, res.stdout + "\n" + res.stderr)

    def serve(self, cmd: Command, args: list[str], env: dict, where: str) -> None:
        from tests.servers import Server

        assert "--port" not in args and "--home" not in args, f"{where}: the test picks those"
        self.stop()
        log = self.work / f"serve-{cmd.lineno}.log"
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        with open(log, "wb") as err:
            self.server = (
                RealServer(self.home, *args, stderr_file=err)
                if REAL_MODEL
                else (Server(self.home, *args, stderr_file=err))
            )
        check_output(cmd, self.name, log.read_text(encoding="utf-8"), self.url)

    def curl(self, cmd: Command, args: list[str], where: str) -> None:
        assert self.server, f"{where}: no `$ foodvec serve` before it on this page"
        curl = shutil.which("curl")
        assert curl, "the HTTP examples of the docs run curl: install it (apt-get install curl)"
        args = [a.replace(DOC_URL, self.url) for a in args]
        res = subprocess.run([curl, *args], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, f"{where} exited {res.returncode}: {res.stderr}"
        check_output(cmd, self.name, res.stdout, self.url)

    def run_pycon(self, block: Block) -> None:
        text = block.text.replace(DOC_URL, self.url) if self.server else block.text
        test = doctest.DocTestParser().get_doctest(
            text, self.globs, self.name, self.name, block.lineno - 1
        )
        test.globs = self.globs  # one namespace per page: later blocks use earlier names
        report = io.StringIO()
        runner = doctest.DocTestRunner(
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
        )
        runner.run(test, out=report.write, clear_globs=False)
        assert runner.failures == 0, f"{self.name}:{block.lineno}:\n{report.getvalue()}"
        self.ran += 1

    def stop(self) -> None:
        if self.server:
            self.server.stop()
            self.server = None


# FOODVEC_DOCS_MODEL=FOLDER runs the examples with that model instead of the fake one
# (a check by hand that what the docs show holds for the real model: set it to a
# trained default model, `.foodvec/models/default` after `make demo`).
REAL_MODEL = os.environ.get("FOODVEC_DOCS_MODEL")


@pytest.fixture
def every_model_is_fake(monkeypatch):
    """Any model spec (`base`, a folder, the default) loads one fake embedder, in this
    process; server processes use tests/serve_fake.py, which does the same."""
    import indexer.home_model

    if REAL_MODEL:  # the page's home gets the model as `make demo` leaves it
        monkeypatch.delenv("FOODVEC_MODEL", raising=False)
        return None
    fake = FakeEmbedder(64)
    monkeypatch.setattr(indexer.home_model, "load_embedder", lambda spec, **kw: fake)
    monkeypatch.setenv("FOODVEC_MODEL", "fake")
    return fake


class RealServer:
    """`foodvec serve` with the model of FOODVEC_DOCS_MODEL (tests/servers.Server's face)."""

    def __init__(self, home, *extra: str, stderr_file):
        import sys

        from tests.servers import free_port, wait_healthy

        self.port = free_port()
        env = {**os.environ, "FOODVEC_HOME": str(home), "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "search.cli", "serve", "--port", str(self.port), *extra]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr_file)
        wait_healthy(self.proc, f"http://127.0.0.1:{self.port}", lambda: "see the log")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _runs(path: Path) -> bool:
    return any(b.lang in ("console", "pycon") and not b.not_run for b in blocks(path))


@pytest.mark.parametrize("path", [p for p in PAGES if _runs(p)], ids=page_name)
def test_the_examples_of_the_page_run(path, tmp_path, monkeypatch, every_model_is_fake):
    from indexer import BuildOptions, FoodIndex

    page_blocks = [b for b in blocks(path) if b.lang in ("console", "pycon") and not b.not_run]
    work = tmp_path / "work"
    (work / "indexer" / "data").mkdir(parents=True)
    shutil.copy(SAMPLE, work / "indexer" / "data" / SAMPLE.name)
    home = work / ".foodvec"
    monkeypatch.chdir(work)
    monkeypatch.setenv("PWD", str(work))
    monkeypatch.setenv("FOODVEC_HOME", str(home))
    if REAL_MODEL:
        (home / "models").mkdir(parents=True)
        shutil.copytree(REAL_MODEL, home / "models" / "default")
    with FoodIndex(home) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
    page = Page(path, work, monkeypatch)
    try:
        for block in page_blocks:
            if block.lang == "console":
                page.run_console(block)
            else:
                page.run_pycon(block)
    finally:
        page.stop()
    assert page.ran
