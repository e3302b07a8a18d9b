"""Ray on a real local cluster (2 CPUs): a build embedded by Ray Data actors gives the
local build's vectors bit for bit, and mining in Ray tasks gives the local pairs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import indexer.mining
from indexer import FoodIndex
from tests.conftest import SAMPLE, run, write_csv


def _vectors(idx: FoodIndex) -> tuple[list[str], np.ndarray]:
    ids, vecs = idx.vectors()
    rows = idx.items(ids.tolist())
    return [rows[i].ext_id for i in ids.tolist()], vecs


@pytest.mark.model
def test_ray_build_gives_the_local_vectors_bit_for_bit(ray_cluster, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "ray"
    res = run("build", SAMPLE, "--home", local, "--model", "base", "-q", "--json")
    assert res.exit_code == 0, res.output
    res = run("build", SAMPLE, "--home", remote, "--model", "base", "--ray", "auto", "-q",
              "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["new"] == 234 and summary["embedded"] == 234
    with FoodIndex(local, model="base") as a, FoodIndex(remote, model="base") as b:
        ids_a, vecs_a = _vectors(a)
        ids_b, vecs_b = _vectors(b)
        assert ids_a == ids_b and len(ids_a) == 234
        assert vecs_a.tobytes() == vecs_b.tobytes()  # bit for bit
        assert a.search(["김치", "칼슘 풍부"], k=5) == b.search(["김치", "칼슘 풍부"], k=5)
        assert b.verify() == []
    # a second Ray build of changed rows embeds only what changed, and a re-embedding
    # build sends every stored text to the cluster
    rows = [{"id": "k131", "text": "김치: 유산균 풍부, 새 설명"}, {"id": "x1", "text": "두유"}]
    res = run("build", write_csv(tmp_path / "more.csv", rows), "--home", remote,
              "--model", "base", "--ray", "auto", "-q", "--json")  # fmt: skip
    summary = json.loads(res.stdout)
    assert (summary["new"], summary["updated"], summary["embedded"]) == (1, 1, 2)


def test_ray_mining_gives_the_local_pairs(ray_cluster, built, fakes, monkeypatch):
    # small steps, so that the 234 rows make several blocks of several steps
    monkeypatch.setattr(indexer.mining, "EXACT_STEP", 16)
    with FoodIndex(built) as idx:
        for mode in ("exact", "approximate"):
            local = idx.mine(threshold=0.5, top_k=5, mode=mode)
            remote = idx.mine(threshold=0.5, top_k=5, mode=mode, ray="auto")
            assert local.pairs > 50 and remote.pairs == local.pairs
            assert idx.job_pairs(remote.job) == idx.job_pairs(local.job)
    res = run("mine", "--threshold", "0.5", "--ray", "auto", "--json")
    assert res.exit_code == 0, res.output
    assert res.stdout == run("mine", "--threshold", "0.5", "--json").stdout


def test_mine_blocks_cover_every_row_once(ray_cluster):
    import faiss

    from indexer.cluster import mine_blocks

    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((1001, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    flat = faiss.IndexFlatIP(16)
    flat.add(vecs)
    rows, cols, scores = mine_blocks("auto", flat, vecs, 64, 4, 3, -1.0)
    got = np.concatenate(rows)
    assert np.array_equal(np.unique(got), np.arange(1001))
    assert np.bincount(got).tolist() == [3] * 1001  # every row, top 3, once


def test_ray_flag_without_ray_says_how_to_install_it(built, fakes, monkeypatch):
    import ray as real

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    try:
        res = run("mine", "--ray", "auto")
        assert res.exit_code == 1 and "pip install 'foodvec[cluster]'" in res.output
        res = run("build", SAMPLE, "--ray", "auto")
        assert res.exit_code == 1 and "pip install 'foodvec[cluster]'" in res.output
    finally:
        sys.modules["ray"] = real


def _closed_port() -> int:
    from tests.servers import free_port

    return free_port()  # free: nothing listens there


def test_a_stale_cluster_file_or_a_dead_address_is_refused_within_seconds(tmp_path):
    """A cluster file left by a Ray cluster that has stopped, RAY_ADDRESS naming one,
    and an address nothing answers at: each a one-line error in seconds, from a
    process that is not yet connected (Ray itself would wait, deaf to SIGTERM)."""
    import os
    import subprocess
    import time

    dead = f"127.0.0.1:{_closed_port()}"
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(dead + "\n")
    env = {**os.environ, "RAY_TMPDIR": str(tmp_path), "FOODVEC_HOME": str(tmp_path / "h")}
    env.pop("RAY_ADDRESS", None)
    cases = [
        (["--ray", "auto"], env, "does not answer"),
        (["--ray", "auto"], {**env, "RAY_ADDRESS": dead}, "RAY_ADDRESS names"),
        (["--ray", dead], env, "nothing answers there"),
    ]
    for flags, case_env, words in cases:
        started = time.monotonic()
        res = subprocess.run(
            [sys.executable, "-m", "search.cli", "build", str(SAMPLE), "--model", "base", *flags],
            capture_output=True, text=True, env=case_env, timeout=60,
        )  # fmt: skip
        took = time.monotonic() - started
        assert res.returncode == 1 and words in res.stderr, (flags, res.stderr[-600:])
        assert "Traceback" not in res.stderr and took < 10, took


def test_the_token_is_taken_where_ray_takes_it_and_turns_token_mode_on(tmp_path, monkeypatch):
    """Ray's order (RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH names, ~/.ray/auth_token);
    a token at hand turns token mode on where RAY_AUTH_MODE is unset, as `ray start`
    does; RAY_AUTH_MODE=disabled sends none."""
    from indexer import cluster
    from indexer.errors import FoodvecError
    from indexer.settings import Settings

    turned_on = []
    monkeypatch.setattr(cluster, "use_ray_token", lambda: turned_on.append(True))
    home, given = tmp_path / "home", tmp_path / "given"
    given.write_text("from-path\n")
    base = {"HOME": str(home), "FOODVEC_HOME": str(tmp_path / "h")}

    def source(**env):
        cfg = Settings.from_env({**base, **env})
        return cluster._token_mode(cfg, joining=True)

    assert source() is None and not turned_on
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("  \n")  # blank: no token
    assert source() is None
    (home / ".ray" / "auth_token").write_text("from-home\n")
    assert source() == f"the file {home / '.ray' / 'auth_token'}" and len(turned_on) == 1
    assert source(RAY_AUTH_TOKEN_PATH=str(given)).endswith("(RAY_AUTH_TOKEN_PATH)")
    assert source(RAY_AUTH_TOKEN="t", RAY_AUTH_TOKEN_PATH=str(given)) == "RAY_AUTH_TOKEN"
    turned_on.clear()
    assert source(RAY_AUTH_MODE="Token", RAY_AUTH_TOKEN="t") == "RAY_AUTH_TOKEN"
    assert source(RAY_AUTH_MODE="disabled", RAY_AUTH_TOKEN="t") is None and not turned_on
    with pytest.raises(FoodvecError, match="RAY_AUTH_TOKEN_PATH names"):
        source(RAY_AUTH_TOKEN_PATH=str(tmp_path / "missing"))
    (home / ".ray" / "auth_token").unlink()
    with pytest.raises(FoodvecError, match="RAY_AUTH_MODE=token, but no Ray token"):
        source(RAY_AUTH_MODE="token")
    # `--ray auto` with no cluster recorded starts one: Ray makes its token then
    cfg = Settings.from_env({**base, "RAY_AUTH_MODE": "token"})
    assert cluster._token_mode(cfg, joining=False) is None
    assert "secret" not in repr(Settings.from_env({**base, "RAY_AUTH_TOKEN": "secret"}))
    assert Settings.from_env({**base, "RAY_ENABLE_K8S_TOKEN_AUTH": "true"}).ray_k8s_auth
    assert not Settings.from_env({**base, "RAY_ENABLE_K8S_TOKEN_AUTH": "0"}).ray_k8s_auth


# -- a cluster that requires a token ---------------------------------------------------


def _without_ray_variables(env: dict) -> dict:
    return {k: v for k, v in env.items() if not k.startswith("RAY_")}


@pytest.fixture(scope="module")
def token_cluster():
    """A Ray head started with RAY_AUTH_MODE=token (1 CPU, its own HOME and temporary
    folder, so no token file of the user's is read or written): (address, token)."""
    import os
    import secrets
    import tempfile
    import time
    from pathlib import Path

    try:
        import ray  # noqa: F401
    except ImportError as exc:
        if os.environ.get("FOODVEC_TEST_RAY") == "required":
            raise
        pytest.skip(f"Ray is not installed: {exc}")
    from tests.servers import free_port

    # short: Ray's socket paths under it must stay within the 107 bytes Linux allows
    temp = Path(tempfile.mkdtemp(prefix="foodvec-ray-"))
    (temp / "home").mkdir()
    token, port = secrets.token_hex(16), free_port()
    env = {**_without_ray_variables(dict(os.environ)), "HOME": str(temp / "home"),
           "RAY_TMPDIR": str(temp), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}  # fmt: skip
    log = temp / "head.log"
    with open(log, "wb") as out:
        head = subprocess.Popen(
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}",
             "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats", "--block"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while b"Ray runtime started" not in log.read_bytes():
            assert head.poll() is None, f"ray start failed:\n{log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"ray start took over 90 s:\n{log.read_text()}"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", token, temp
    finally:
        _stop_session(head.pid)
        head.wait(10)
        import shutil

        shutil.rmtree(temp, ignore_errors=True)


def _session(sid: int) -> list[int]:
    """The live processes of session ``sid`` (Linux): a Ray head started in its own
    session and all it started, its actors' workers (in groups of their own) included."""
    from pathlib import Path

    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, _, session = stat.read_text().rsplit(")", 1)[1].split()[:4]
        except (OSError, ValueError):
            continue
        if int(session) == sid and state != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _stop_session(sid: int) -> None:
    import os
    import signal
    import time

    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        for pid in _session(sid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while _session(sid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _session(sid):
            return


def _foodvec(args: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float]:
    import time

    started = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "search.cli", *map(str, args)],
                         capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    return res, time.monotonic() - started


def test_a_token_cluster_is_joined_with_its_token_and_refuses_others_in_seconds(
    token_cluster, built, tmp_path
):
    """Against a cluster started with RAY_AUTH_MODE=token: a token at hand (here a file
    named by RAY_AUTH_TOKEN_PATH, RAY_AUTH_MODE unset) turns token mode on and mining
    runs there, with the local pairs; no token, a wrong one, or token mode without a
    token is a one-line error naming the problem, in seconds."""
    import os

    address, token, temp = token_cluster
    (tmp_path / "token").write_text(token + "\n")
    (tmp_path / "nohome").mkdir()
    env = {**_without_ray_variables(dict(os.environ)), "FOODVEC_HOME": str(built),
           "HOME": str(tmp_path / "nohome"), "RAY_TMPDIR": str(temp)}  # fmt: skip
    mine = ["mine", "--threshold", "0.5", "--json", "--ray", address]
    res, _ = _foodvec(mine, {**env, "RAY_AUTH_TOKEN_PATH": str(tmp_path / "token")})
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout == run("mine", "--threshold", "0.5", "--json").stdout
    build = ["build", SAMPLE, "--model", "base", "--ray", address]
    cases = [
        (mine, env, "requires a token (it runs with RAY_AUTH_MODE=token) and none was given"),
        (mine, {**env, "RAY_AUTH_TOKEN": "wrong"}, "refused the token from RAY_AUTH_TOKEN"),
        (build, {**env, "RAY_AUTH_TOKEN": "wrong"}, "refused the token from RAY_AUTH_TOKEN"),
        (mine, {**env, "RAY_AUTH_MODE": "token"}, "RAY_AUTH_MODE=token, but no Ray token"),
        (mine, {**env, "RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": token},
         "RAY_AUTH_MODE=disabled here sends none"),
        (mine, {**env, "RAY_AUTH_TOKEN_PATH": str(tmp_path / "none")},
         "RAY_AUTH_TOKEN_PATH names"),
    ]  # fmt: skip
    for args, case_env, words in cases:
        res, took = _foodvec(args, case_env)
        assert res.returncode == 1 and words in res.stderr, (args[0], words, res.stderr[-800:])
        assert "Traceback" not in res.stderr and took < 10, took
