"""Settings: every environment variable foodvec reads, and the layout of a home.

Nothing else in the package reads ``os.environ``; the "Environment" table of docs/reference.md
lists the same variables (a test keeps the two in step).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

# name -> what it sets (docs/reference.md, "Environment", says the same, with defaults)
VARIABLES = {
    "FOODVEC_HOME": "the home folder (--home)",
    "FOODVEC_MODEL": "the model (--model)",
    "FOODVEC_DB": "a SQLAlchemy URL for the database (--db)",
    "FOODVEC_ENCODER": "auto, onnx or torch",
    "FOODVEC_TOKEN": "the bearer token of foodvec serve (--token)",
    "FOODVEC_LOG": "the log level of foodvec serve",
    "FOODVEC_DEBUG": "any value: unexpected errors print their traceback",
    "FOODVEC_CACHE": "the per-user cache (exported ONNX graphs, trained default models)",
    "FOODVEC_MAX_RESPONSE_BYTES": "the most bytes of one response of foodvec serve",
    "FOODVEC_MAX_QUERIES": "the most queries in one search request of foodvec serve",
    "FOODVEC_MAX_HITS": "the most results (k x queries) of one search request of foodvec serve",
    "FOODVEC_JOBS_KEEP": "how many finished mining jobs are kept (the newest)",
    "FOODVEC_JOBS_KEEP_DAYS": "how many days a finished mining job is kept",
}

ENCODERS = ("auto", "onnx", "torch")

# Defaults of the limits (docs/reference.md, "Environment"): a response of a search or a page of
# items is refused past these, with and without a token.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
MAX_QUERIES = 100
MAX_HITS = 1000
# Finished mining jobs kept: the newest JOBS_KEEP, none older than JOBS_KEEP_DAYS.
JOBS_KEEP = 100
JOBS_KEEP_DAYS = 7.0

# The training sets, the sample corpus and the lookup benchmark, shipped in the package.
DATA_DIR = Path(str(resources.files("indexer").joinpath("data")))


@dataclass(frozen=True)
class Settings:
    home: Path
    db: str | None
    model: str | None
    encoder: str
    token: str | None
    log_level: str
    debug: bool
    cache: Path
    max_response_bytes: int = MAX_RESPONSE_BYTES
    max_queries: int = MAX_QUERIES
    max_hits: int = MAX_HITS
    jobs_keep: int = JOBS_KEEP
    jobs_keep_days: float = JOBS_KEEP_DAYS
    # Ray's own variables, read to check a cluster before joining it (indexer.cluster):
    # the address it would join, and the file where `ray start` records one
    ray_address: str | None = None
    ray_address_file: Path | None = None
    # Ray's token authentication (a cluster started with RAY_AUTH_MODE=token): the mode
    # asked for, and the token's three places in Ray's order of precedence
    ray_auth_mode: str | None = None
    ray_auth_token: str | None = field(default=None, repr=False)
    ray_auth_token_path: Path | None = None
    ray_token_file: Path | None = None
    # Kubernetes authentication in place of a shared token (left to Ray)
    ray_k8s_auth: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """The settings an environment gives (``os.environ`` at the edge, or a dict)."""
        home = env.get("FOODVEC_HOME")
        if home:
            home_path = Path(home).expanduser()
        else:
            data = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
            home_path = Path(data) / "foodvec"
        return cls(
            home=home_path,
            db=env.get("FOODVEC_DB") or None,
            model=env.get("FOODVEC_MODEL") or None,
            encoder=env.get("FOODVEC_ENCODER") or "auto",
            token=env.get("FOODVEC_TOKEN") or None,
            log_level=env.get("FOODVEC_LOG") or "warning",
            debug=bool(env.get("FOODVEC_DEBUG")),
            cache=Path(env["FOODVEC_CACHE"]).expanduser()
            if env.get("FOODVEC_CACHE")
            else Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "foodvec",
            max_response_bytes=_number(env, "FOODVEC_MAX_RESPONSE_BYTES", MAX_RESPONSE_BYTES),
            max_queries=_number(env, "FOODVEC_MAX_QUERIES", MAX_QUERIES),
            max_hits=_number(env, "FOODVEC_MAX_HITS", MAX_HITS),
            jobs_keep=_number(env, "FOODVEC_JOBS_KEEP", JOBS_KEEP),
            jobs_keep_days=_number(env, "FOODVEC_JOBS_KEEP_DAYS", JOBS_KEEP_DAYS, float),
            ray_address=(env.get("RAY_ADDRESS") or "").strip() or None,
            ray_address_file=_ray_temp(env) / "ray" / "ray_current_cluster",
            ray_auth_mode=(env.get("RAY_AUTH_MODE") or "").strip().lower() or None,
            ray_auth_token=(env.get("RAY_AUTH_TOKEN") or "").strip() or None,
            ray_auth_token_path=Path(env["RAY_AUTH_TOKEN_PATH"])
            if env.get("RAY_AUTH_TOKEN_PATH")
            else None,
            ray_token_file=Path(env.get("HOME") or Path.home()) / ".ray" / "auth_token",
            ray_k8s_auth=(env.get("RAY_ENABLE_K8S_TOKEN_AUTH") or "").strip().lower()
            not in ("", "0", "false"),
        )


def _ray_temp(env: Mapping[str, str]) -> Path:
    """Ray's temporary folder: RAY_TMPDIR, else TMPDIR on Linux, else /tmp."""
    import sys
    import tempfile

    if env.get("RAY_TMPDIR"):
        return Path(env["RAY_TMPDIR"])
    if sys.platform.startswith("linux") and env.get("TMPDIR"):
        return Path(env["TMPDIR"])
    if sys.platform.startswith(("linux", "darwin")):
        return Path("/tmp")
    return Path(tempfile.gettempdir())


def _number(env: Mapping[str, str], name: str, default: float, kind: type = int):
    """A limit from the environment: a whole number (or, for ``float``, any number) of at
    least 1 (days: more than 0); unset or empty gives the default."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not (value >= 1 if kind is int else 0 < value < 1e6):
        from .errors import BadInputError

        what = "a whole number of at least 1" if kind is int else "a number of days above 0"
        raise BadInputError(f"{name}={raw!r}: give {what}")
    return value


def settings() -> Settings:
    """The settings as the environment gives them now."""
    return Settings.from_env(os.environ)


def offline() -> None:
    """Nothing may reach for a model hub: set the hubs' offline switches (when unset)
    before a model library is imported."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def use_ray_token() -> None:
    """Ray's token authentication on for this process and the Ray processes it starts
    (RAY_AUTH_MODE=token), as ``ray start`` turns it on where a token is at hand."""
    os.environ["RAY_AUTH_MODE"] = "token"


@dataclass(frozen=True)
class Layout:
    """Where things live in a home folder (docs/index.md, "The home")."""

    home: Path

    @property
    def database(self) -> Path:
        return self.home / "foodvec.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.database}"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def lock_file(self) -> Path:
        return self.index_dir / ".lock"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def default_model(self) -> Path:
        return self.models_dir / "default"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    def reject_report(self, stamp: str) -> Path:
        return self.reports_dir / f"rejected-{stamp}.jsonl"
