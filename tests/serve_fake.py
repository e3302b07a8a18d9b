"""Runs `foodvec serve` with the fake embedder, for tests that start real server
processes. Usage: python -m tests.serve_fake serve --home H --port P ..."""

from __future__ import annotations

import indexer.home_model
from search.cli import main
from tests.fakes import FakeEmbedder

_fake = FakeEmbedder(64)
indexer.home_model.load_embedder = lambda spec, **kw: _fake

if __name__ == "__main__":
    main()
