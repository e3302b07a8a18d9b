"""What a one-shot search pays for: the imports of a search process, the model loaded
beside the indexes (``HomeModel.prefetch``), and the FAISS index mapped from its file
until its first change (``AnnIndex.source``)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from indexer import BuildOptions, FoodIndex, ModelNotFoundError
from indexer.ann import AnnIndex
from tests.conftest import SAMPLE


def test_a_search_process_never_imports_scipy_or_a_builds_libraries(tmp_path):
    """A saved lexical index is loaded and scored with scipy unimportable; the CLI and
    that search load neither tqdm nor ftfy (a build's progress bars and text repair),
    nor the training libraries."""
    from indexer.lexical import LexicalIndex

    docs = [(1, "김치", "김치: 유산균 풍부"), (2, "두부", "두부: 단백질")]
    (tmp_path / "lexical.npz").write_bytes(LexicalIndex.build(docs).to_bytes())
    code = (
        "import sys\n"
        "sys.modules['scipy'] = None\n"
        "import search.cli\n"
        "from indexer.lexical import LexicalIndex\n"
        "idx = LexicalIndex.load(__import__('pathlib').Path('lexical.npz'))\n"
        "ids, scores = idx.score('김치')\n"
        "assert ids.tolist() == [1], ids\n"
        "loaded = [m for m in ('tqdm', 'ftfy', 'torch', 'sentence_transformers') "
        "if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw", "ivf-sq8"])
def test_a_loaded_index_is_mapped_until_its_first_change(tmp_path, kind):
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((2000, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(100, 2100, dtype=np.int64)
    built = AnnIndex.build(kind, 32, lambda: [(ids, vecs)], len(ids))
    built.save(tmp_path, {"generation": 1, "model": "m"})
    loaded, _ = AnnIndex.load(tmp_path)
    assert loaded.source is not None  # mapped from the file
    want = built.search(vecs[:5], 10)[1]
    np.testing.assert_array_equal(loaded.search(vecs[:5], 10)[1], want)

    copy = loaded.clone()  # maps the same pages
    new = rng.standard_normal((1, 32)).astype(np.float32)
    new /= np.linalg.norm(new)
    if loaded.supports_remove:
        loaded.remove(ids[:1])
    loaded.add(np.array([9_999_999]), new)  # the first change copies it into memory
    assert loaded.source is None
    assert loaded.search(new, 1)[1][0, 0] == 9_999_999
    if loaded.supports_remove:
        assert ids[0] not in loaded.search(vecs[:1], 5)[1][0]
    # the clone and a new load still answer from the unchanged file
    np.testing.assert_array_equal(copy.search(vecs[:5], 10)[1], want)
    again, _ = AnnIndex.load(tmp_path)
    np.testing.assert_array_equal(again.search(vecs[:5], 10)[1], want)
    copy.add(np.array([8_888_888]), new)
    assert copy.search(new, 1)[1][0, 0] == 8_888_888


def test_a_home_catches_up_a_mapped_index_from_the_change_log(fakes, home):
    """A second process's view: the published index is loaded mapped, then a write by
    another handle is applied to it (copied into memory first), with no rebuild."""
    with FoodIndex(home) as writer:
        writer.build([SAMPLE], BuildOptions(progress=False))
    with FoodIndex(home) as reader, FoodIndex(home) as writer:
        first = reader.search("김치", k=3)[0]
        assert first
        assert reader.derived._ann.source is not None
        # not published: the reader applies the change log to what it mapped
        new = {"id": "new-1", "text": "김치볶음밥: 김치와 밥을 볶은 요리"}
        writer.upsert([new], publish=False)
        hits = reader.search("김치볶음밥", k=3)[0]
        assert "new-1" in [h.id for h in hits]
        assert reader.derived._ann.source is None
        assert reader.index_counters()["rebuilds"] == 0


def test_a_prefetched_model_is_the_one_searched_with(fakes, home):
    with FoodIndex(home) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
    with FoodIndex(home) as idx:
        idx.prefetch_model()
        hits = idx.search("김치", k=3)[0]
        assert hits and idx.model.embedder is fakes["fake"]


def test_a_prefetch_that_fails_raises_at_the_first_use(fakes, home, monkeypatch):
    """The background load swallows nothing for good: the search loads again and
    raises the same error; a home with no model at all says so at the search."""
    import indexer.home_model

    with FoodIndex(home) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))

    def broken(spec, **kw):
        raise ModelNotFoundError(f"{spec}: not a model folder")

    monkeypatch.setattr(indexer.home_model, "load_embedder", broken)
    with FoodIndex(home) as idx:
        idx.prefetch_model()
        with pytest.raises(ModelNotFoundError, match="not a model folder"):
            idx.search("김치", k=3)
    monkeypatch.delenv("FOODVEC_MODEL")
    with FoodIndex(home / "empty") as idx:
        idx.prefetch_model()  # nothing to load: no error here
        with pytest.raises(ModelNotFoundError):
            _ = idx.model.embedder
