"""foodvec's front-ends: the command line (``search.cli``), the HTTP service and its
pages (``search.service``) and the HTTP client (``search.client``). The library is
``indexer``; its front object and result type are offered here too."""

from indexer import FoodIndex, Hit, Searcher

__all__ = ["FoodIndex", "Hit", "Searcher"]
