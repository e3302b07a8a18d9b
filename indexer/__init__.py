"""foodvec's library: an index home (``FoodIndex``) and everything it is made of."""

from .build import BuildOptions, BuildSummary
from .embedder import Embedder, SentenceTransformerEmbedder, base_model_path, load_embedder
from .errors import (
    BadInputError,
    BadRowError,
    FoodvecError,
    ModelMismatchError,
    ModelNotFoundError,
    NotFoundError,
)
from .home import FoodIndex
from .retrieval import Hit, Searcher

__all__ = [
    "BadInputError",
    "BadRowError",
    "BuildOptions",
    "BuildSummary",
    "Embedder",
    "FoodIndex",
    "FoodvecError",
    "Hit",
    "ModelMismatchError",
    "ModelNotFoundError",
    "NotFoundError",
    "Searcher",
    "SentenceTransformerEmbedder",
    "base_model_path",
    "load_embedder",
]
