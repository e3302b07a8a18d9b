"""Alembic environment: the only place the database schema changes."""

from pathlib import Path

SCRIPT_LOCATION = Path(__file__).resolve().parent
