"""SQLAlchemy models: the schema that the Alembic migrations in ``migrations/`` create."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Item(Base):
    """One food description. ``id`` is the FAISS id; ``ext_id`` is the user's id."""

    __tablename__ = "items"
    # AUTOINCREMENT: a deleted item's integer id is never handed out again, so a stale
    # FAISS index can never point at a different item than the one it was built with.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ext_id: Mapped[str] = mapped_column(String, unique=True, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    # The food's name (the build's name column, else the text's label before a colon)
    # and its key for the exact-name rule of hybrid search (``terms.name_key``).
    name: Mapped[str | None] = mapped_column(Text)
    name_key: Mapped[str | None] = mapped_column(Text, index=True)
    # Canonical JSON (sorted keys), so that equal metadata compares equal as text.
    meta: Mapped[str] = mapped_column("metadata", Text, nullable=False, default="{}")
    created_at: Mapped[datetime] = mapped_column(
        DateTime, nullable=False, server_default=func.current_timestamp()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime, nullable=False, server_default=func.current_timestamp()
    )


class Vector(Base):
    """An embedding, keyed by the text's content hash and the model's fingerprint."""

    __tablename__ = "vectors"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_fp: Mapped[str] = mapped_column(String(64), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class Model(Base):
    """A model that has embedded texts in this database."""

    __tablename__ = "models"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime, nullable=False, server_default=func.current_timestamp()
    )


class State(Base):
    """Key/value state: ``generation``, ``model`` (active fingerprint), ``log_floor``."""

    __tablename__ = "state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class Change(Base):
    """Change log: which items each generation touched, so an index can catch up."""

    __tablename__ = "changes"
    __table_args__ = (Index("ix_changes_generation", "generation"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, nullable=False)
    item_id: Mapped[int] = mapped_column(Integer, nullable=False)
    op: Mapped[str] = mapped_column(String(1), nullable=False)  # "u" upsert, "d" delete


class Job(Base):
    """A long-running job (paraphrase mining): parameters, state and timings."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    # running, done, failed, interrupted
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    params: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    model_fp: Mapped[str | None] = mapped_column(String(64))
    generation: Mapped[int | None] = mapped_column(Integer)
    items: Mapped[int | None] = mapped_column(Integer)
    mode: Mapped[str | None] = mapped_column(String(32))
    pair_count: Mapped[int | None] = mapped_column(Integer)
    left_out: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(
        DateTime, nullable=False, server_default=func.current_timestamp()
    )
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    seconds: Mapped[float | None] = mapped_column(Float)


class JobPair(Base):
    """One mined pair (item ids, a < b) of a job."""

    __tablename__ = "job_pairs"
    __table_args__ = (
        Index("ix_job_pairs_job_a", "job_id", "item_a"),
        Index("ix_job_pairs_job_b", "job_id", "item_b"),
    )

    job_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    item_a: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_b: Mapped[int] = mapped_column(Integer, primary_key=True)
    score: Mapped[float] = mapped_column(Float, nullable=False)


class AnnLayout(Base):
    """A trained layout of the approximate index (the IVF coarse centroids), shared by
    every home that indexes this database with the model, so that replicas on one
    database search the same lists and give the same answers. ``epoch`` counts the
    layouts of one model and index kind; the newest is the one in force."""

    __tablename__ = "ann_layouts"
    __table_args__ = (Index("ux_ann_layouts_epoch", "model_fp", "kind", "epoch", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_fp: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    epoch: Mapped[int] = mapped_column(Integer, nullable=False)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    nlist: Mapped[int] = mapped_column(Integer, nullable=False)
    nprobe: Mapped[int] = mapped_column(Integer, nullable=False)
    # the items indexed when it was trained, and the database's generation then
    trained_count: Mapped[int] = mapped_column(Integer, nullable=False)
    generation: Mapped[int] = mapped_column(Integer, nullable=False)
    centroids: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    checksum: Mapped[str] = mapped_column(String(64), nullable=False)
    # recall@10 against exact search, measured when it was first used (None: not yet)
    recall_at_10: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(
        DateTime, nullable=False, server_default=func.current_timestamp()
    )


class Landing(Base):
    """A big build landing in slices (``storage.slices``): once its rows are copied to
    ``landing_rows`` (``state`` "copying" until then, "landing" after), it lands whole,
    one part per write transaction, finished by another process if its own stops."""

    __tablename__ = "landings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    model_fp: Mapped[str] = mapped_column(String(64), nullable=False)
    model_name: Mapped[str] = mapped_column(String(255), nullable=False)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    parts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    landed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # what the landed parts did, summed
    new: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    generation: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(
        DateTime, nullable=False, server_default=func.current_timestamp()
    )
    # the last time its process moved it on (a copy or a landed part)
    moved_at: Mapped[datetime] = mapped_column(
        DateTime, nullable=False, server_default=func.current_timestamp()
    )


class LandingRow(Base):
    """A staged row of a landing build, in the part that lands it."""

    __tablename__ = "landing_rows"
    __table_args__ = (
        Index("ix_landing_rows_part", "landing", "part"),
        Index("ix_landing_rows_hash", "hash"),
    )

    landing: Mapped[int] = mapped_column(Integer, primary_key=True)
    ext_id: Mapped[str] = mapped_column(String, primary_key=True)
    part: Mapped[int] = mapped_column(Integer, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    meta: Mapped[str] = mapped_column(Text, nullable=False)
    src: Mapped[str] = mapped_column(Text, nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str | None] = mapped_column(Text)
    nkey: Mapped[str | None] = mapped_column(Text)
