"""Runs the foodvec CLI with a fake embedder that takes a little time per batch, so a
test can kill it mid-build or mid-request. Usage: python -m tests.slow_cli ARGS..."""

from __future__ import annotations

import time

import indexer.home_model
from search.cli import main
from tests.fakes import FakeEmbedder


class SlowFake(FakeEmbedder):
    def encode(self, texts):
        time.sleep(0.02)
        return super().encode(texts)


_fake = SlowFake(64)
indexer.home_model.load_embedder = lambda spec, **kw: _fake

if __name__ == "__main__":
    main()
