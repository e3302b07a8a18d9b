"""foodvec's read path: semantic lookup (and paraphrase mining) over an index home."""

from indexer import FoodIndex

from .engine import Hit, Searcher

__all__ = ["FoodIndex", "Hit", "Searcher"]
