"""What a server writes about itself: the start-up block (``announce``: URL, home,
store, items, model, mode), one access line per request (``RequestLog``: status,
duration in ms and a request id, which the response carries as ``X-Request-ID``), and
the logging configuration for uvicorn in text or JSON (``foodvec serve --log-format
json``: one object per record with its time, level, logger and message; access records
add client, method, path, HTTP version, status, duration_ms and request_id, and any
other record logged while a request is handled adds its request_id)."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from indexer.storage import describe_database

# The id of the request being handled (None outside requests), for every log record.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "foodvec_request_id", default=None
)
# An incoming X-Request-ID is kept when it is this sane (a proxy's or a client's id,
# so one id follows a request through several services); anything else is replaced.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
ACCESS_LOGGER = "uvicorn.access"  # the name log collectors already filter on


def request_id_of(scope: dict[str, Any]) -> str:
    """The request's own id when it sent a sane X-Request-ID, else a new one."""
    for key, value in scope.get("headers") or ():
        if key.lower() == b"x-request-id":
            given = value.decode("latin-1").strip()
            if SANE_REQUEST_ID.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


class RequestLog:
    """ASGI middleware: one access line per request with its status, duration and
    request id, and the id in the response's ``X-Request-ID`` header. It is the only
    access line: uvicorn's own (which cannot know the duration) is filtered out by
    ``OwnAccessLines`` in the logging configuration."""

    def __init__(self, app):
        self.app = app
        self.log = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = request_id_of(scope)
        token = REQUEST_ID.set(rid)
        t0 = time.perf_counter()
        status = {"code": 500}  # what is logged if the app fails before answering

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            ms = (time.perf_counter() - t0) * 1000.0
            self.log.info(
                '%s - "%s %s HTTP/%s" %d',
                _client(scope),
                scope.get("method", ""),
                _path(scope),
                scope.get("http_version", "1.1"),
                status["code"],
                extra={"request_id": rid, "duration_ms": round(ms, 2)},
            )
            REQUEST_ID.reset(token)


def _client(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else ""


def _path(scope: dict[str, Any]) -> str:
    path = scope.get("root_path", "") + scope.get("path", "")
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('ascii', 'replace')}" if query else path


class OwnAccessLines(logging.Filter):
    """Lets through the access lines of ``RequestLog`` (they carry a request id) and
    drops uvicorn's, so that each request is one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return hasattr(record, "request_id")


class WithRequestId(logging.Filter):
    """Gives every record logged while a request is handled that request's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            rid = REQUEST_ID.get()
            if rid is not None:
                record.request_id = rid
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name == ACCESS_LOGGER and isinstance(record.args, tuple):
            if len(record.args) == 5:
                client, method, path, version, status = record.args
                out.update(client=client, method=method, path=path, http=version, status=status)
        for key in ("duration_ms", "request_id"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        out.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


TEXT_ACCESS_FORMAT = (
    '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s '
    "%(duration_ms).1f ms id=%(request_id)s"
)


def log_config(fmt: str, level: str) -> dict[str, Any]:
    """uvicorn's ``log_config`` for the format: uvicorn's own text lines (access lines
    with the duration and request id added) or JSON. Requests are logged whatever the
    level of the rest."""
    filters = {
        "own_access": {"()": OwnAccessLines},
        "request_id": {"()": WithRequestId},
    }
    if fmt == "text":
        formatters = {
            "default": {
                "()": "uvicorn.logging.DefaultFormatter",
                "fmt": "%(levelprefix)s %(message)s",
                "use_colors": None,
            },
            "access": {"()": "uvicorn.logging.AccessFormatter", "fmt": TEXT_ACCESS_FORMAT},
        }
        # as uvicorn's default: its messages on stderr, access lines on stdout
        handlers = {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "stream": "ext://sys.stdout",
            },
        }
        main, access = "default", "access"
    else:
        formatters = {"json": {"()": JsonFormatter}}
        handlers = {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        }
        main = access = "json"
    for handler in handlers.values():
        handler["filters"] = ["request_id"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": filters,
        "formatters": formatters,
        "handlers": handlers,
        "loggers": {
            **{
                name: {"handlers": [main], "level": level.upper(), "propagate": False}
                for name in ("uvicorn", "uvicorn.error", "foodvec")
            },
            ACCESS_LOGGER: {
                "handlers": [access],
                "level": "INFO",
                "propagate": False,
                "filters": ["own_access"],
            },
        },
    }


# -- the start-up block ---------------------------------------------------------------
def startup_facts(
    index: Any,
    host: str,
    port: int,
    db_url: str,
    token: str | None,
    protect_reads: bool,
    loopback: bool,
) -> dict[str, Any]:
    """What ``foodvec serve`` says when it starts: URL, home, store, items, model and
    mode (who may read and write)."""
    shown_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    url = f"http://{shown_host}:{port}"
    gen, fingerprint = index.state()
    try:
        model = index.model_spec()
    except Exception:  # a home without a model yet still serves (it holds nothing)
        model = "none yet (`foodvec train`, or --model PATH)"
    if token and protect_reads:
        access = "reads and writes need the token"
    elif token:
        access = "writes need the token, reads are open"
    else:
        access = "no token: anyone who can reach it reads and writes"
    if loopback:
        reach = "loopback only"
    elif host in ("0.0.0.0", "::", "[::]"):
        reach = "every interface"
    else:
        reach = f"listening on {host}"
    return {
        "url": url,
        "docs": f"{url}/docs",
        "home": str(index.home),
        "store": describe_database(db_url),
        "items": index.count(),
        "generation": gen,
        "model": model,
        "fingerprint": fingerprint[:12] if fingerprint else None,
        "mode": f"{access}; {reach}",
    }


def banner(facts: dict[str, Any]) -> str:
    model = facts["model"] + (
        f" (fingerprint {facts['fingerprint']})" if facts["fingerprint"] else ""
    )
    return "\n".join(
        [
            f"foodvec serving {facts['url']}  (API docs: {facts['docs']})",
            f"  home   {facts['home']}",
            f"  store  {facts['store']}",
            f"  items  {facts['items']} (generation {facts['generation']})",
            f"  model  {model}",
            f"  mode   {facts['mode']}",
        ]
    )


def announce(facts: dict[str, Any], fmt: str, stream=None) -> None:
    """The start-up block on stderr: the lines of ``banner``, or under JSON logging
    one record (logger ``foodvec``) with the facts as fields."""
    stream = stream or sys.stderr
    if fmt == "json":
        record = logging.makeLogRecord(
            {
                "name": "foodvec",
                "levelno": logging.INFO,
                "levelname": "INFO",
                "msg": f"foodvec serving {facts['url']}",
                "fields": facts,
            }
        )
        text = JsonFormatter().format(record)
    else:
        text = banner(facts)
    print(text, file=stream, flush=True)
