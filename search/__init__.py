"""foodvec's front-ends: the command line, the HTTP service and its page, and the
measures a model is judged by. The library is ``indexer``; its names are offered here
too, so ``from search import Searcher`` keeps working."""

from indexer import FoodIndex, Hit, Searcher

__all__ = ["FoodIndex", "Hit", "Searcher"]
