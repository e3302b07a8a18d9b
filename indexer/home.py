"""An index home: one folder with the database, the FAISS index and the models.

``FoodIndex``, the library's front object, composes a home's parts: the store, the
derived indexes (``indexer.derived``), the model (``indexer.home_model``), the search
(``indexer.retrieval``) and the mining jobs (``indexer.mining``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import backups, records
from .ann import AnnIndex
from .build import BuildOptions, BuildSummary, build, memory_table, open_sources
from .derived import DerivedIndex, refuse_an_emptied_database
from .embedder import Embedder
from .errors import BadInputError, FoodvecError, IndexNotSavedError, ModelMismatchError
from .filters import Node
from .home_model import DEFAULT_MINE_THRESHOLD, MODEL_SETTINGS, HomeModel
from .mining import MineResult, MiningJobs
from .retrieval import Hit, Searcher
from .settings import Layout, Settings, settings
from .storage import ItemRow, Store


class FoodIndex:
    """One index home. Pass ``embedder`` to use a model object instead of a folder, and
    ``config`` to give the settings (by default read from the environment once, here:
    the front-ends read them at their edge and pass them in)."""

    def __init__(
        self,
        home: Path | str | None = None,
        model: str | None = None,
        db: str | None = None,
        embedder: Embedder | None = None,
        config: Settings | None = None,
    ):
        cfg = config if config is not None else settings()
        self.settings = cfg
        self.home = Path(home).expanduser() if home else cfg.home
        self.home.mkdir(parents=True, exist_ok=True)
        self.layout = Layout(self.home)
        url = db or cfg.db or self.layout.db_url
        if url == self.layout.db_url:
            refuse_an_emptied_database(self.layout)
        self._store = Store.open(url, jobs_keep=cfg.jobs_keep, jobs_keep_days=cfg.jobs_keep_days)
        self.model = HomeModel(self._store, self.layout, model or cfg.model, embedder, cfg)
        self.derived = DerivedIndex(self._store, self.layout)
        self._jobs = MiningJobs(self._store, self.derived)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> FoodIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the model (``HomeModel``) ----------------------------------------------------
    @property
    def default_model_path(self) -> Path:
        return self.layout.default_model

    def model_spec(self) -> str:
        """Which model to use: --model/FOODVEC_MODEL, else the one this index was built
        with, else the trained default in ``models/default``."""
        return self.model.spec()

    @property
    def embedder(self) -> Embedder:
        return self.model.embedder

    def model_loaded(self) -> bool:
        return self.model.loaded()

    def model_mismatch(self) -> str | None:
        """Why searches would be refused with the loaded model (the items were embedded
        with another since it loaded); None when it matches or none is loaded yet."""
        if not self.model.loaded():
            return None
        try:
            self.model.check()
        except ModelMismatchError as exc:
            return str(exc)
        return None

    def mining_threshold(self) -> float:
        """The model's calibrated mining threshold, else ``DEFAULT_MINE_THRESHOLD``."""
        return self.model.mining_threshold()

    # -- writes -------------------------------------------------------------------------
    def build(
        self, paths: Sequence[Path | str], opts: BuildOptions | None = None, index_kind="auto"
    ) -> BuildSummary:
        opts = opts or BuildOptions()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        # the cluster first: an address that does not answer is said before the model loads
        remote = self.model.remote_embedder(opts.ray) if opts.ray else None
        summary = build(
            self._store,
            self.embedder,
            open_sources(paths, opts.format),
            opts,
            report_default=self.layout.reject_report(stamp),
            remote=remote,
        )
        self._sync_after_write(
            summary.generation, publish=True, kind=index_kind, force_rebuild=opts.reembed
        )
        return summary

    def upsert(
        self, records: Iterable[dict[str, Any]], opts: BuildOptions | None = None, publish=True
    ) -> BuildSummary:
        """Insert or update items given as dicts with ``id``, ``text`` and metadata keys
        (or ``metadata``: a dict), durably. With ``publish=False`` the index files are
        left for a later ``publish()`` (the database's change log brings them up)."""
        flat = []
        for r in records:
            r = dict(r)
            meta = r.pop("metadata", None) or {}
            flat.append({**meta, **r})
        opts = opts or BuildOptions(progress=False)
        summary = build(self._store, self.embedder, [memory_table(flat)], opts)
        self._sync_after_write(summary.generation, publish=publish)
        return summary

    def delete(self, ext_ids: Sequence[str], publish: bool = True) -> int:
        """Delete items by id, all or none: unknown ids raise NotFoundError."""
        deleted, generation = records.delete(self._store, ext_ids)
        self._sync_after_write(generation, publish=publish)
        return deleted

    def update(self, ext_id: str, metadata=None, unset: Sequence[str] = (), publish=True) -> int:
        """Change an item's metadata alone (``records.update``); the new generation."""
        generation = records.update(self._store, ext_id, metadata, unset)
        self._sync_after_write(generation, publish=publish)
        return generation

    def delete_where(self, where: dict[str, Any], dry_run: bool = False, publish=True) -> int:
        """Delete every item matching a filter (``records.delete_where``)."""
        deleted, generation = records.delete_where(self._store, where, dry_run)
        if deleted and not dry_run:
            self._sync_after_write(generation, publish=publish)
        return deleted

    def _sync_after_write(self, generation: int, **kw) -> None:
        """Bring the indexes up to a committed write; if saving them fails, say that
        the write itself is committed (the database is the source of truth and the
        indexes catch up on the next open)."""
        try:
            if self.derived.aside:  # a server: a big change before it never blocks searches
                self.derived.catch_up()
            self.derived.sync(**kw)
        except OSError as exc:
            raise IndexNotSavedError(
                f"the write is committed (generation {generation}), but the index could "
                f"not be saved ({exc.strerror or exc}); it catches up on the next open"
            ) from None

    # -- the derived indexes (``DerivedIndex``) ---------------------------------------
    def sync(
        self, publish: bool | None = None, kind: str | None = None, force_rebuild: bool = False
    ) -> AnnIndex | None:
        """Bring the in-memory indexes up to the database (``DerivedIndex.sync``)."""
        return self.derived.sync(publish, kind, force_rebuild)

    def publish(self) -> bool:
        """Save the in-memory indexes if they are newer than the published ones."""
        return self.derived.publish()

    def unpublished(self) -> tuple[int, int | None]:
        """(items indexed, items changed since the last save; None: unknown)."""
        return self.derived.unpublished()

    def index_lag(self) -> int:
        """Generations the in-memory indexes are behind the database."""
        return self.derived.lag()

    def generation_listener(self):
        """Something a server waits on for the database's generation to move (PostgreSQL:
        LISTEN/NOTIFY), or None where it must look every so often instead."""
        return self._store.generation_listener()

    def index_behind(self) -> tuple[int, float]:
        """(generations behind the database, seconds since last caught up)."""
        return self.derived.behind()

    def index_counters(self) -> dict[str, Any]:
        """Full rebuilds (in all, by reason) and catch-ups since this object was opened."""
        return self.derived.counters()

    def warm_lexical(self) -> None:
        """Load the Korean analyzer now, for a server to call at start."""
        self.derived.warm_lexical()

    def warm_fields(self) -> bool:
        """Build the field index now (filters answered in memory), for a server to call
        at start; False when the home has no index yet (``DerivedIndex.warm_fields``)."""
        return self.derived.warm_fields()

    def rebuild_aside(self) -> str | None:
        """For a server: rebuild a misfit index (its kind, its shared layout) beside the
        one served (``DerivedIndex.rebuild_aside``); why it rebuilt (None: no need)."""
        return self.derived.rebuild_aside()

    def catch_up(self) -> None:
        """For a server's catch-up thread: catch the indexes up with the database, a
        big change read ahead and applied in slices (``DerivedIndex.catch_up``)."""
        self.derived.catch_up()

    def read_ahead(self) -> int:
        """For a server's catch-up thread: read what the next catch-up needs without
        the index lock (``DerivedIndex.read_ahead``); how many items."""
        return self.derived.read_ahead()

    def finish_landings(self) -> list[int]:
        """For a server: finish the big builds that stopped while landing in slices
        (``storage.slices``); the landings finished."""
        return self._store.finish_landings()

    def serve_aside(self) -> None:
        """From now on a misfit index is searched as it is until ``rebuild_aside`` (a
        server's thread) replaces it, never rebuilt inside a search or a write."""
        self.derived.aside = True

    def warm_index(self) -> None:
        """Copy the FAISS index into memory now, for a server to call at start."""
        self.derived.warm_index()

    def prefetch_model(self) -> None:
        """Start loading the model in the background, for a one-shot search: it loads
        while the indexes do (``HomeModel.prefetch``)."""
        self.model.prefetch()

    def verify(self) -> list[str]:
        """Compare the published indexes with the database; [] when they agree."""
        return self.derived.verify()

    # -- reads --------------------------------------------------------------------------
    def search(self, queries: str | Sequence[str], **kw: Any) -> list[list[Hit]]:
        """Food lookup (``Searcher.search``): one list of hits per query."""
        return self.searcher().search(queries, **kw)

    def searcher(self, **tuning: Any) -> Searcher:
        """The search over this home (``alpha``, ``candidates``, ``needs``: ``Searcher``)."""
        return Searcher(self._store, self.derived, self.model, **tuning)

    def filtered_ids(self, where: Node) -> np.ndarray:
        """Item ids whose metadata matches the filter (kept per generation)."""
        return self.derived.filtered_ids(where)

    def vectors(self, ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, stored vectors) of the given items (all when None)."""
        return self.derived.vectors(ids)

    def items(self, ids: Iterable[int]) -> dict[int, ItemRow]:
        """The rows of the given item ids (those that exist)."""
        return self._store.items_by_ids(ids)

    def item(self, ext_id: str) -> ItemRow | None:
        """The row of the item with this id, or None."""
        return self._store.item_by_ext_id(ext_id)

    def get(self, ext_id: str) -> dict[str, Any] | None:
        """One item as a record: {"id", "text", "metadata"}; None when unknown."""
        row = self._store.item_by_ext_id(str(ext_id))
        return records.record(row) if row else None

    def records(self, where=None, offset: int = 0, limit: int = 100, after=None):
        """A page of items and the next page's cursor (``records.page``)."""
        return records.page(self._store, where, offset, limit, after)

    def export(self, path: Path | str, fmt=None, where=None, vectors: bool = False) -> int:
        """Write the items to a file (``records.export``); how many were written."""
        return records.export(self._store, self.vectors, path, fmt, where, vectors)

    def facets(self, max_values: int = 20) -> list[dict[str, Any]]:
        """Per top-level metadata key: its text values with counts, or its range."""
        return self._store.facets(max_values)

    def state(self) -> tuple[int, str | None]:
        """(generation, model fingerprint) of the database, in one read."""
        return self._store.state()

    def count(self) -> int:
        return self._store.count()

    def collect_vectors(self) -> tuple[int, int]:
        """Delete cached vectors that no item uses: (deleted, left)."""
        deleted = self._store.collect_vectors()
        return deleted, self._store.stats()["vectors"]

    def stats(self) -> dict[str, Any]:
        s = self._store.stats()
        info = self._store.model_info(s["model"]) if s["model"] else None
        return {
            "home": str(self.home),
            "items": s["items"],
            "generation": s["generation"],
            "model": s["model"],
            "model_name": info["name"] if info else None,
            "dim": info["dim"] if info else None,
            "vectors_cached": s["vectors"],
            "mine_threshold": self.model.mining_threshold(),
            "health_head": self.model.health_head_info(),
            **self.derived.describe(),
            # big builds landing in slices (or landed in the last hour), newest first
            "landings": self._store.landings()[:5],
        }

    # -- mining jobs (``MiningJobs``) ---------------------------------------------------
    def mine(self, **kw: Any) -> MineResult:
        """Paraphrase mining as a recorded job (``MiningJobs.run``)."""
        return self._jobs.run(**kw)

    def start_job(self, params: dict[str, Any], limit: int | None = None) -> int:
        """Record a mining job as running; ``mine(job_id=...)`` does its work."""
        return self._jobs.start(params, limit)

    def list_jobs(self, job_id: int | None = None) -> list[dict[str, Any]]:
        """Every mining job (or the one given), newest first."""
        return self._jobs.rows(job_id)

    def job(self, job_id: int) -> dict[str, Any] | None:
        return self._jobs.get(job_id)  # None: no such job

    def delete_job(self, job_id: int) -> None:
        """Delete a job that has ended, and its pairs."""
        self._jobs.delete(job_id)

    def latest_done_job(self) -> int | None:
        return self._jobs.latest_done()

    def job_pairs(self, job_id: int, of=None, limit=None, offset: int = 0) -> list[dict]:
        """A job's pairs, best first, with their kind of match (``MiningJobs.pairs``)."""
        return self._jobs.pairs(job_id, of, limit, offset)

    def job_clusters(self, job_id: int) -> list[dict[str, Any]]:
        """A job's clusters of near-duplicates, largest first."""
        return self._jobs.clusters(job_id)

    # -- backups (``indexer.backups``) --------------------------------------------------
    def backup(self, dest: Path | str, with_model: bool = False) -> dict[str, Any]:
        """Copy this home into the empty folder ``dest`` while writers go on."""
        return backups.backup(self._store, self.derived, dest, with_model)

    @classmethod
    def restore(cls, src: Path | str, home: Path | str | None = None, **kw: Any) -> FoodIndex:
        """A home made from a backup folder, all or nothing (``backups.restore``)."""
        if kw.pop("db", None):
            raise BadInputError("restore makes a SQLite home; a database URL does not apply")
        home_path = Path(home).expanduser() if home else settings().home
        return backups.restore(src, home_path, lambda path, url: cls(path, db=url, **kw))


__all__ = ["DEFAULT_MINE_THRESHOLD", "MODEL_SETTINGS", "FoodIndex", "FoodvecError"]
