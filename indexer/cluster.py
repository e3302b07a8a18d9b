"""Ray: a build's embedding and a mining job's neighbour search spread over a cluster.

Embedding runs on Ray Data: the texts to embed go in as a dataset of (content hash,
text) rows; a pool of actors, each holding its own encoder session (one CPU each),
maps batches of texts to vectors; the vectors come back to this process, which caches
them through the store as a local build does. The ONNX encoder is batch invariant bit
for bit, so the vectors are those of a local build whatever the batches.

Mining splits the rows into blocks of whole search steps: each Ray task searches its
block against the shared index (in the object store) exactly as the local loop does,
so the pairs are the local run's.

Ray is optional (``pip install 'foodvec[cluster]'``); nothing here imports it until a
``--ray`` command runs.
"""

from __future__ import annotations

import socket
import threading
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FoodvecError
from .neighbours import search_rows
from .settings import settings, use_ray_token

INSTALL = "Ray is not installed: pip install 'foodvec[cluster]' (Ray with Ray Data)"
# Texts per batch handed to an actor: enough to amortise a batch's trip through the
# object store, small enough to keep every actor busy to the end.
EMBED_BATCH = 512
# Mining blocks per CPU of the cluster (more blocks: finer progress and balance).
BLOCKS_PER_CPU = 4


# How long a cluster's address is given to answer before foodvec says it does not.
REACH_TIMEOUT_S = 3.0
# How long its control service is given to reply (a token it refuses is said at once).
PROBE_TIMEOUT_S = 5.0


def _answers(address: str, timeout: float = REACH_TIMEOUT_S) -> bool:
    """Whether something accepts a TCP connection at ``HOST:PORT``."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout):
            return True
    except (OSError, ValueError):
        return False


def check_reachable(address: str) -> str | None:
    """Refuse, within seconds, an address nothing answers at, and a recorded cluster
    that has stopped (Ray would wait for either far longer, deaf to SIGTERM). Returns
    the address of the cluster to join: ``address``, or for ``auto`` the one recorded
    on this machine; None where ``auto`` will start a cluster here."""
    if address != "auto":
        if ":" in address and not _answers(address):
            raise FoodvecError(
                f"cannot reach the Ray cluster at {address!r}: nothing answers there "
                f"within {REACH_TIMEOUT_S:.0f} s (is it started, and is the port right?)"
            )
        return address
    cfg = settings()
    recorded = cfg.ray_address or ""
    where = "RAY_ADDRESS"
    if not recorded and cfg.ray_address_file is not None:
        path = cfg.ray_address_file
        try:
            recorded = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None  # no cluster recorded: `auto` starts one on this machine
        where = str(path)
    if recorded and recorded != "auto" and not _answers(recorded):
        raise FoodvecError(
            f"{where} names a Ray cluster at {recorded}, which does not answer: a cluster "
            "that has stopped. Start it again (ray start --head), or remove "
            f"{where if where != 'RAY_ADDRESS' else 'the variable'} so that --ray auto "
            "starts one on this machine"
        )
    return recorded if recorded and recorded != "auto" else None


# Where a cluster's token can be found (the head node's `ray get-auth-token` prints it).
TOKEN_HELP = (
    "set RAY_AUTH_TOKEN to the cluster's token (`ray get-auth-token` on its head node "
    "prints it), or RAY_AUTH_TOKEN_PATH to a file holding it"
)


def token_source(cfg) -> str | None:
    """Where Ray takes its token from, in Ray's order: RAY_AUTH_TOKEN, the file
    RAY_AUTH_TOKEN_PATH names (one that cannot be read is an error, as it is to Ray),
    then ~/.ray/auth_token; None where there is none."""
    if cfg.ray_auth_token:
        return "RAY_AUTH_TOKEN"
    if cfg.ray_auth_token_path is not None:
        if not _holds_text(cfg.ray_auth_token_path):
            raise FoodvecError(
                f"RAY_AUTH_TOKEN_PATH names {cfg.ray_auth_token_path}, which cannot be read "
                "or is empty: it should hold the Ray cluster's token"
            )
        return f"the file {cfg.ray_auth_token_path} (RAY_AUTH_TOKEN_PATH)"
    if cfg.ray_token_file is not None and _holds_text(cfg.ray_token_file):
        return f"the file {cfg.ray_token_file}"
    return None


def _holds_text(path: Path) -> bool:
    try:
        return bool(path.read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        return False


def _token_mode(cfg, joining: bool) -> str | None:
    """Decide token authentication for this connection, as ``ray start`` does: on where
    RAY_AUTH_MODE=token, or where it is unset and a token is at hand; off where
    RAY_AUTH_MODE says anything else. Returns where the token comes from (None: no token
    is sent). With RAY_AUTH_MODE=token and no token, joining a cluster is refused here
    (Ray makes a token only for a cluster it starts)."""
    if cfg.ray_auth_mode not in (None, "token"):
        return None
    source = token_source(cfg)
    if source is None:
        if cfg.ray_auth_mode == "token" and joining:
            raise FoodvecError(f"RAY_AUTH_MODE=token, but no Ray token was found: {TOKEN_HELP}")
        return None
    if cfg.ray_auth_mode is None:
        use_ray_token()
    return source


def _refresh_auth() -> None:
    """Make an imported Ray see RAY_AUTH_MODE as it is now (Ray reads it once, when it
    is imported), and check that it finds a token: Ray aborts the whole process when
    it connects in token mode without one."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray without token authentication
        return
    Config.initialize("")
    loader = AuthenticationTokenLoader.instance()
    loader.reset_cache()
    if not loader.has_token(ignore_auth_mode=True):
        raise FoodvecError(f"RAY_AUTH_MODE=token, but Ray finds no token: {TOKEN_HELP}")


def _ask_cluster(address: str, source: str | None, cfg) -> None:
    """Ask the cluster's control service (GCS) for its id once, with the token Ray
    sends, so that a cluster that refuses the token, or wants one and gets none, is said
    at once (``ray.init`` would retry for 20 s, then say only that it could not
    connect), and a port where something else answers within seconds (``ray.init``
    would wait on it for minutes)."""
    try:
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError
    except ImportError:  # a Ray without token authentication
        return
    outcome: list[Exception | None] = []

    def ask() -> None:
        try:
            GcsClient(address=address, cluster_id=None)
            outcome.append(None)
        except Exception as exc:
            outcome.append(exc)

    # Ray's client gives up after 40 s; the thread is left to it past PROBE_TIMEOUT_S
    asker = threading.Thread(target=ask, name="foodvec-ray-probe", daemon=True)
    asker.start()
    asker.join(PROBE_TIMEOUT_S)
    if not outcome:
        raise FoodvecError(
            f"something answers at {address}, but not as a Ray cluster: no reply from its "
            f"control service within {PROBE_TIMEOUT_S:.0f} s (is this the port of the head "
            "node, as `ray start --head --port` gave it, 6379 by default?)"
        )
    if not isinstance(outcome[0], AuthenticationError):
        return  # connected, or not a token problem: ray.init says what it is
    if source is not None:
        raise FoodvecError(
            f"the Ray cluster at {address} refused the token from {source}: it is not "
            f"that cluster's token; {TOKEN_HELP}"
        )
    why = (
        f"RAY_AUTH_MODE={cfg.ray_auth_mode} here sends none: set RAY_AUTH_MODE=token, and "
        if cfg.ray_auth_mode
        else "none was given: "
    )
    raise FoodvecError(
        f"the Ray cluster at {address} requires a token (it runs with RAY_AUTH_MODE=token) "
        f"and {why}{TOKEN_HELP}"
    )


def _ray():
    try:
        import ray
    except ImportError:
        raise FoodvecError(INSTALL) from None
    return ray


def check_cluster(address: str) -> None:
    """What joining the cluster at ``address`` needs, checked in seconds, before anything
    loads: that it answers (``check_reachable``); that a token is at hand where token
    authentication is on (decided as ``ray start`` decides it); that the cluster accepts
    the token, or wants none. Nothing to check where this process is connected already."""
    ray = _ray()
    if ray.is_initialized():
        return
    cfg = settings()
    target = check_reachable(address)
    if cfg.ray_k8s_auth:
        return  # Kubernetes authentication: Ray's own, with no token of foodvec's
    source = _token_mode(cfg, joining=target is not None)
    if source is not None:
        _refresh_auth()
    if target is not None and ":" in target and not target.startswith("ray://"):
        _ask_cluster(target, source, cfg)


def connect(address: str):
    """Ray, connected: ``auto`` joins the cluster running on this machine or starts
    one; anything else is a cluster address (``HOST:PORT`` or ``ray://HOST:PORT``).
    A connection made earlier in this process (``ray.init``) is used as it is."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    cfg = settings()
    # What an actor needs to load the same encoder as this process.
    env = {
        "FOODVEC_ENCODER": cfg.encoder,
        "FOODVEC_CACHE": str(cfg.cache),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    kw: dict[str, Any] = {
        "runtime_env": {"env_vars": env},
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": "warning",
    }
    check_cluster(address)
    try:
        if address == "auto":
            try:
                ray.init(address="auto", **kw)
            except ConnectionError:
                ray.init(**kw)  # no cluster here: start one on this machine
        else:
            ray.init(address=address, **kw)
    except FoodvecError:
        raise
    except Exception as exc:
        raise FoodvecError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
    return ray


def cluster_cpus(ray) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class _EncodeActor:
    """A Ray Data actor: one encoder, loaded once, one CPU."""

    def __init__(self, spec: str, fingerprint: str, cache_dir: str | None):
        from .embedder import load_embedder

        self.embedder = load_embedder(
            spec, cache_dir=Path(cache_dir) if cache_dir else None, workers=1
        )
        if self.embedder.fingerprint != fingerprint:
            raise FoodvecError(
                f"the model at {spec} on this Ray node is not the one of the build "
                f"({self.embedder.fingerprint[:12]}, not {fingerprint[:12]}): every node "
                "needs the same model folder"
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vecs = self.embedder.encode([str(t) for t in batch["text"]])
        return {"hash": batch["hash"], "vector": np.asarray(vecs, dtype=np.float32)}


def _map(ds, ray_data, spec: str, fingerprint: str, cache_dir: Path | None, actors: int):
    return ds.map_batches(
        _EncodeActor,
        fn_constructor_kwargs={
            "spec": spec,
            "fingerprint": fingerprint,
            "cache_dir": str(cache_dir) if cache_dir else None,
        },
        batch_size=EMBED_BATCH,
        batch_format="numpy",
        compute=ray_data.ActorPoolStrategy(size=actors),
        num_cpus=1,
        max_restarts=0,  # an actor that dies fails the build (nothing lands), loudly
    )


def embed(
    address: str,
    spec: str,
    fingerprint: str,
    cache_dir: Path | None,
    items: Sequence[tuple[str, str]],
    sink: Callable[[list[str], np.ndarray], None],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Embed (content hash, text) pairs on the cluster; ``sink(hashes, vectors)`` takes
    the results as they come back (in any order)."""
    if not items:
        return
    ray = connect(address)
    import logging

    import pyarrow as pa
    from ray import data as ray_data

    # foodvec draws its own progress bar; Ray Data's bars and plan logs would garble it
    ray_data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    actors = cluster_cpus(ray)
    table = pa.table({"hash": [h for h, _ in items], "text": [t for _, t in items]})
    blocks = max(actors, min(len(items) // EMBED_BATCH + 1, actors * 8))
    ds = ray_data.from_arrow(table, override_num_blocks=blocks)
    with warnings.catch_warnings():
        # max_restarts has no named parameter yet; Ray warns about the keyword form
        warnings.simplefilter("ignore", DeprecationWarning)
        out = _map(ds, ray_data, spec, fingerprint, cache_dir, actors)
    seen = 0
    for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
        hashes = [str(h) for h in batch["hash"]]
        vecs = np.ascontiguousarray(np.stack(batch["vector"]), dtype=np.float32)
        sink(hashes, vecs)
        seen += len(hashes)
        if progress:
            progress(len(hashes))
    if seen != len(items):
        raise FoodvecError(f"the Ray cluster returned {seen} vectors for {len(items)} texts")


def remote_embedder(address: str, spec: str, fingerprint: str, cache_dir: Path | None):
    """A build's embedding on the Ray cluster at ``address`` (``embed`` with its first
    four arguments given): its actors load the model at ``spec`` and check its
    fingerprint. Connects now, so that a cluster that cannot be reached is said before
    any input is read."""
    connect(address)
    return partial(embed, address, spec, fingerprint, cache_dir)


def _mine_block(
    index_bytes: np.ndarray,
    vecs: np.ndarray,
    start: int,
    stop: int,
    step: int,
    kk: int,
    top_k: int,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows start..stop-1 searched in steps of ``step``, as the local loop does (the
    index comes with its own search settings, an IVF index's nprobe included)."""
    import faiss

    index = faiss.deserialize_index(index_bytes)
    rows, cols, scores = search_rows(
        lambda a, b: index.search(vecs[a:b], kk), start, stop, step, top_k, threshold
    )
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(scores)


def mine_blocks(
    address: str,
    index,
    vecs: np.ndarray,
    step: int,
    kk: int,
    top_k: int,
    threshold: float,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The (rows, neighbours, scores) of every row of ``vecs`` against ``index``,
    searched in Ray tasks over blocks of whole steps."""
    import faiss

    ray = connect(address)
    n = len(vecs)
    steps = -(-n // step)
    per_block = max(1, -(-steps // (cluster_cpus(ray) * BLOCKS_PER_CPU)))
    index_ref = ray.put(faiss.serialize_index(index))
    vecs_ref = ray.put(np.ascontiguousarray(vecs, dtype=np.float32))
    task = ray.remote(num_cpus=1)(_mine_block)
    pending = {}
    for s in range(0, steps, per_block):
        start, stop = s * step, min(n, (s + per_block) * step)
        ref = task.remote(index_ref, vecs_ref, start, stop, step, kk, top_k, threshold)
        pending[ref] = (start, stop)
    done: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            start, stop = pending.pop(ref)
            done[start] = ray.get(ref)
            if progress:
                progress(stop - start)
    parts = [done[s] for s in sorted(done)]
    return [p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts]
