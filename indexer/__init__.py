"""foodvec's write path: text -> vectors -> SQLite rows + FAISS index."""

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
from .home import FoodIndex, default_home

__all__ = [
    "BadInputError",
    "BadRowError",
    "BuildOptions",
    "BuildSummary",
    "Embedder",
    "FoodIndex",
    "FoodvecError",
    "ModelMismatchError",
    "ModelNotFoundError",
    "NotFoundError",
    "SentenceTransformerEmbedder",
    "base_model_path",
    "default_home",
    "load_embedder",
]
