"""Log records as JSON lines (``foodvec serve --log-format json``): one object per
record with its time, level, logger and message; access records also carry the
client, method, path, status and HTTP version."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            if len(record.args) == 5:
                client, method, path, version, status = record.args
                out.update(client=client, method=method, path=path, http=version, status=status)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def log_config(fmt: str, level: str) -> dict[str, Any] | None:
    """uvicorn's ``log_config`` for the format (None: uvicorn's own text format)."""
    if fmt == "text":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "loggers": {
            **{
                name: {"handlers": ["json"], "level": level.upper(), "propagate": False}
                for name in ("uvicorn", "uvicorn.error", "foodvec")
            },
            # every request is a line, whatever the level of the rest
            "uvicorn.access": {"handlers": ["json"], "level": "INFO", "propagate": False},
        },
    }
