"""Property-based tests of the write paths: whatever is accepted can be searched in
every mode, filtered, mined and deleted afterwards, and `verify` passes; whatever is
refused is refused with a message and leaves nothing behind."""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from indexer import FoodIndex
from indexer.errors import FoodvecError
from tests.fakes import FakeEmbedder

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**62), max_value=2**62)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
records = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=20) | st.integers(min_value=0, max_value=10**9),
        "text": st.text(min_size=1, max_size=120),
        "metadata": st.dictionaries(
            st.text(min_size=1, max_size=10).filter(lambda k: k not in ("id", "text", "metadata")),
            values,
            max_size=4,
        ),
    }
)

HOME = Path(tempfile.mkdtemp(prefix="foodvec-prop-"))
INDEX = FoodIndex(HOME, embedder=FakeEmbedder(32))
INDEX.upsert([{"id": "anchor", "text": "김치: 유산균 풍부", "metadata": {"k": "v"}}])


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(records)
def test_whatever_is_accepted_can_be_searched_filtered_mined_and_deleted(rec):
    before = INDEX.count()
    try:
        summary = INDEX.upsert([rec])
    except FoodvecError as exc:
        event("refused")
        assert str(exc)  # refused with a message
        assert INDEX.count() == before
        assert INDEX.verify() == []
        return
    event("accepted")
    ext_id = str(rec["id"]) if not isinstance(rec["id"], float) else str(int(rec["id"]))
    row = INDEX.item(ext_id)
    assert row is not None and summary.items >= before
    # stored metadata is valid JSON (never NaN or Infinity)
    json.loads(json.dumps(row.metadata, allow_nan=False))
    s = INDEX.searcher()
    for mode in ("hybrid", "dense", "lexical"):
        hits = s.search(row.text, k=5, mode=mode)[0]
        json.dumps([h.as_dict() for h in hits], allow_nan=False)
        assert all(math.isfinite(h.score) for h in hits)
    assert s.search(row.text, k=3, mode="dense")[0][0].id == ext_id
    for key, value in row.metadata.items():
        if isinstance(value, str):
            got = s.search("x", k=5, filters={key: value})[0]
            assert ext_id in {h.id for h in got}
            break
    INDEX.mine(threshold=0.5, top_k=3, max_pairs=100)
    assert INDEX.verify() == []
    INDEX.delete([ext_id])
    assert INDEX.item(ext_id) is None
    assert INDEX.verify() == []


# -- the command line, fed hostile values ------------------------------------------------
DEEP = 5000
HOSTILE_VALUES = [
    "caf\udce9",  # what Python makes of argv bytes that are not UTF-8 (café in Latin-1)
    "\udc80",
    "\ud800",  # lone surrogates no argv makes, but a caller of main() can
    "x\udfffy",
    "\x00",
    "a\x00b",
    str(2**63),
    str(-(2**63) - 1),
    "9" * 400,
    "1e400",
    "-1e400",
    "nan",
    "inf",
    "[" * DEEP + "]" * DEEP,
    '{"a":' * DEEP + "1" + "}" * DEEP,
    '{"$or": [' * 40 + '{"a": 1}' + "]}" * 40,
    "(" * DEEP,
    "a=" + "[" * DEEP,
    "",
    " ",
    "-",
]
hostile = st.sampled_from(HOSTILE_VALUES) | st.text(
    st.characters(exclude_categories=()), min_size=1, max_size=12
)
# Commands that train or evaluate a model are left out (minutes each), and so is --ray
# (it joins or starts a Ray cluster); serve runs up to the point where it would listen.
LEFT_OUT = {"train", "eval-model"}
# A valid command line of each command, to which one hostile value is given.
BASE = {
    "add": ["add", "귀리 라떼: 베타글루칸"],
    "backup": ["backup", "bk"],
    "build": ["build", "foods.csv", "-q"],
    "delete": ["delete", "no-such-id"],
    "export": ["export", "out.jsonl"],
    "get": ["get", "k001"],
    "init": ["init"],
    "jobs": ["jobs"],
    "list": ["list", "--limit", "3"],
    "mine": ["mine", "-q", "--threshold", "0.99"],
    "restore": ["restore", "bk", "--home", "restored"],
    "search": ["search", "김치"],
    "serve": ["serve"],
    "stats": ["stats"],
    "update": ["update", "k001", "--meta", "a=1"],
    "vacuum": ["vacuum"],
    "verify": ["verify"],
}


def _value_slots():
    """(command, option or None for its arguments) for every option that takes a
    value and every argument, of every command but those LEFT_OUT."""
    from search.cli import cli

    slots = []
    for name, cmd in sorted(cli.commands.items()):
        if name in LEFT_OUT:
            continue
        for p in cmd.params:
            if getattr(p, "is_flag", False) or p.name in ("help", "ray"):
                continue
            slots.append((name, p.opts[0] if p.param_type_name == "option" else None))
    return slots


def _check_answer(args: list[str], code: int, out: str) -> None:
    """Exit 0, 1 (one line: an error foodvec names) or 2 (bad usage); never a
    traceback or the "unexpected" error of the CLI's last line of defence."""
    assert code in (0, 1, 2), (args, code, out)
    assert "Traceback" not in out and "unexpected" not in out, (args, out)
    if code == 1:
        errors = [line for line in out.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1, (args, out)


def _args(name: str, opt: str | None, value: str) -> list[str]:
    """A valid command line of ``name`` with ``value`` given to ``opt`` (None: to the
    command's argument, in place of the valid one)."""
    base = BASE[name]
    return [name, value, *base[2:]] if opt is None else [*base, opt, value]


@pytest.fixture
def cli_home(built, tmp_path, monkeypatch):
    """The sample home, the working folder a scratch folder holding foods.csv (paths
    the commands write land there), and serve stopping short of listening."""
    import shutil

    import uvicorn

    from tests.conftest import SAMPLE

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: None)
    shutil.copy(SAMPLE, tmp_path / "foods.csv")
    return built


def _invoke(args: list[str]) -> tuple[int, str]:
    """The command line as a user's shell hands it over, through ``main`` (which
    refuses arguments that are not UTF-8, or hold NUL, before click sees them): (the
    exit status, stdout and stderr). An exception that escapes is a failure."""
    import contextlib
    import io
    import sys

    from search.cli import main

    out = io.StringIO()
    argv, sys.argv = sys.argv, ["foodvec", *args]
    try:
        with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
            main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    return code, out.getvalue()


@pytest.mark.hostile
def test_every_value_of_every_command_is_a_clear_answer_never_a_crash(cli_home):
    """One hostile value (lone surrogates, NUL, huge integers, deep nesting, random
    text) in any option or argument of any command: a clear answer, never a crash."""
    slots = _value_slots()
    seen = set()
    codes: Counter[int] = Counter()

    @settings(
        max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.sampled_from(slots), hostile)
    def check(slot, value):
        seen.add(slot)
        args = _args(*slot, value)
        code, out = _invoke(args)
        codes[code] += 1
        _check_answer(args, code, out)

    check()
    assert len(seen) > len(slots) / 2
    # the values reach the commands: some run, some are refused by foodvec itself
    assert codes[0] > 0 and codes[1] > 0 and codes[2] > 0, codes


@pytest.mark.hostile
@pytest.mark.parametrize(
    "value",
    ["caf\udce9", "a\x00b", str(2**64), '{"a":' * DEEP + "1" + "}" * DEEP],
    ids=["surrogate", "nul", "huge-integer", "deep-nesting"],
)
def test_every_option_and_argument_takes_each_hostile_class(cli_home, value):
    """The classes of the hardening list, each given to every option that takes a value
    and every argument of every command (not a sample): a clear answer each time."""
    for slot in _value_slots():
        args = _args(*slot, value)
        _check_answer(args, *_invoke(args))
