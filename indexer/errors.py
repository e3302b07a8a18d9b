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


class IndexNotSavedError(FoodvecError):
    """A write was committed but the derived index files could not be saved."""


class NotFoundError(FoodvecError):
    """An item id that the index does not hold."""
