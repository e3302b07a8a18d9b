"""The model of a home: which one it uses, loaded once, checked against the items.

The model is the one given (``--model``/``FOODVEC_MODEL``, or an embedder object),
else the one the home's items were embedded with, else the trained default in
``models/default``. It is loaded on first use (a keyword search loads none).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path
from typing import Any

from .build import model_mismatch
from .embedder import Embedder, load_embedder
from .errors import BadInputError, ModelNotFoundError
from .settings import Layout, Settings
from .storage import Store

log = logging.getLogger("foodvec")

# Mining threshold for a model that was not calibrated when trained (the base model).
DEFAULT_MINE_THRESHOLD = 0.9
MODEL_SETTINGS = "foodvec_model.json"


def stored_threshold(folder: Path) -> float | None:
    """The mining threshold ``foodvec train`` wrote beside a model (MODEL_SETTINGS), as
    written (it may be out of range); None when there is none or it cannot be read."""
    try:
        return float(json.loads((folder / MODEL_SETTINGS).read_text())["mine_threshold"])
    except (OSError, ValueError, KeyError, TypeError, OverflowError, RecursionError):
        return None


class HomeModel:
    """The model of one home. ``embedder``: a model object to use instead of a folder."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        spec: str | None,
        embedder: Embedder | None = None,
        config: Settings | None = None,
    ):
        self._store = store
        self.config = config  # the encoder and the per-user cache; None: the defaults
        self.layout = layout
        self.given_spec = spec
        self._embedder = embedder
        self._warned: set[str] = set()
        self._load_lock = threading.Lock()
        self._loading: threading.Thread | None = None

    def spec(self) -> str:
        """Which model to use: the one given, else the one this index was built with,
        else the trained default in ``models/default``."""
        if self.given_spec:
            return self.given_spec
        active = self._store.active_model()
        if active:
            info = self._store.model_info(active)
            if info and (info["name"] == "base" or Path(info["name"]).is_dir()):
                return info["name"]
        if self.layout.default_model.is_dir():
            return str(self.layout.default_model)
        raise ModelNotFoundError(
            f"no model: the default model is not trained yet ({self.layout.default_model} is "
            "missing). Train it with `foodvec train` (about 5 minutes on 2 cores), or pass "
            "--model PATH (a sentence-transformers folder, or `base` for the untuned "
            "all-MiniLM-L6-v2)"
        )

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            loading = self._loading
            if loading is not None:
                loading.join()  # a prefetch: its model, or its failure raised below again
            with self._load_lock:
                if self._embedder is None:
                    self._embedder = self._load(self.spec())
        return self._embedder

    def _load(self, spec: str) -> Embedder:
        cfg = self.config
        return load_embedder(
            spec,
            cache_dir=self.layout.models_dir,
            encoder=cfg.encoder if cfg else None,
            onnx_cache=cfg.cache / "onnx" if cfg else None,
        )

    def prefetch(self) -> None:
        """Start loading the model in the background (its ONNX session is native work
        that runs beside the index loads of a one-shot search). The first use of
        ``embedder`` waits for it; a failure is raised there, by loading again."""
        if self._embedder is not None or self._loading is not None:
            return
        try:
            spec = self.spec()  # read here: the store is this thread's
        except ModelNotFoundError:
            return  # the first use says so

        def load() -> None:
            try:
                with self._load_lock:
                    if self._embedder is None:
                        self._embedder = self._load(spec)
            except Exception:  # noqa: BLE001 - the first use loads again and raises
                pass

        self._loading = threading.Thread(target=load, name="foodvec-model", daemon=True)
        self._loading.start()

    def loaded(self) -> bool:
        return self._embedder is not None

    def remote_embedder(self, address: str):
        """A build's embedding on the Ray cluster at ``address`` with this model
        (``cluster.remote_embedder``): it needs a folder (or ``base``) that Ray's actors
        can load, not a model object."""
        from . import cluster

        if self._embedder is not None and self.given_spec is None:
            raise BadInputError("--ray needs a model folder (or `base`) that Ray's actors can load")
        cluster.check_cluster(address)  # before the model loads: seconds, not minutes
        return cluster.remote_embedder(
            address, self.spec(), self.embedder.fingerprint, self.layout.models_dir
        )

    def check(self) -> None:
        """Refuse to search or extend an index with a model it was not built with."""
        active = self._store.active_model()
        if active is None or active == self.embedder.fingerprint:
            return
        if self._store.count():
            raise model_mismatch(self._store, self.embedder, active)

    def mining_threshold(self) -> float:
        """The model's calibrated mining threshold (written by ``foodvec train``), else
        ``DEFAULT_MINE_THRESHOLD``."""
        try:
            spec = self.spec()
        except ModelNotFoundError:
            return DEFAULT_MINE_THRESHOLD
        value = stored_threshold(Path(spec))
        if value is None:
            return DEFAULT_MINE_THRESHOLD
        if not math.isfinite(value) or not -1.0 <= value <= 1.0:  # a cosine, or damage
            self._warn_once(
                "threshold",
                "%s holds no usable mine_threshold (%r); using %s",
                Path(spec) / MODEL_SETTINGS,
                value,
                DEFAULT_MINE_THRESHOLD,
            )
            return DEFAULT_MINE_THRESHOLD
        return value

    def health_head_info(self) -> dict[str, Any] | None:
        """The model's health head (``indexer.health``): its accuracy on the held-out
        phrases and how many labelled phrases fitted it; None when the model has none."""
        from .health import head_for

        try:
            head = head_for(self.spec())
        except ModelNotFoundError:
            return None
        if head is None:
            return None
        return {
            "heldout_accuracy": head.heldout_accuracy,
            "foods_accuracy": head.foods_accuracy,
            "train_rows": head.train_rows,
        }

    def _warn_once(self, key: str, msg: str, *args: Any) -> None:
        """A warning this object gives once (a server would repeat it per request)."""
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)
