"""Property-based tests of the write paths: whatever is accepted can be searched in
every mode, filtered, mined and deleted afterwards, and `verify` passes; whatever is
refused is refused with a message and leaves nothing behind."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from indexer import FoodIndex
from indexer.errors import FoodvecError
from indexer.mining import run_mining_job
from search import Searcher
from tests.fakes import FakeEmbedder

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**62), max_value=2**62)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
records = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=20) | st.integers(min_value=0, max_value=10**9),
        "text": st.text(min_size=1, max_size=120),
        "metadata": st.dictionaries(
            st.text(min_size=1, max_size=10).filter(lambda k: k not in ("id", "text", "metadata")),
            values,
            max_size=4,
        ),
    }
)

HOME = Path(tempfile.mkdtemp(prefix="foodvec-prop-"))
INDEX = FoodIndex(HOME, embedder=FakeEmbedder(32))
INDEX.upsert([{"id": "anchor", "text": "김치: 유산균 풍부", "metadata": {"k": "v"}}])


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(records)
def test_whatever_is_accepted_can_be_searched_filtered_mined_and_deleted(rec):
    before = INDEX.count()
    try:
        summary = INDEX.upsert([rec])
    except FoodvecError as exc:
        event("refused")
        assert str(exc)  # refused with a message
        assert INDEX.count() == before
        assert INDEX.verify() == []
        return
    event("accepted")
    ext_id = str(rec["id"]) if not isinstance(rec["id"], float) else str(int(rec["id"]))
    row = INDEX.item(ext_id)
    assert row is not None and summary.items >= before
    # stored metadata is valid JSON (never NaN or Infinity)
    json.loads(json.dumps(row.metadata, allow_nan=False))
    s = Searcher(INDEX)
    for mode in ("hybrid", "dense", "lexical"):
        hits = s.search(row.text, k=5, mode=mode)[0]
        json.dumps([h.as_dict() for h in hits], allow_nan=False)
        assert all(math.isfinite(h.score) for h in hits)
    assert s.search(row.text, k=3, mode="dense")[0][0].id == ext_id
    for key, value in row.metadata.items():
        if isinstance(value, str):
            got = s.search("x", k=5, filters={key: value})[0]
            assert ext_id in {h.id for h in got}
            break
    run_mining_job(INDEX, threshold=0.5, top_k=3, max_pairs=100)
    assert INDEX.verify() == []
    INDEX.delete([ext_id])
    assert INDEX.item(ext_id) is None
    assert INDEX.verify() == []
