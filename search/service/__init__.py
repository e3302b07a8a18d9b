"""The HTTP service: ``create_app`` over a ``FoodIndex``, and ``serve``."""

from .app import LOOPBACK_NAMES, create_app, is_loopback, serve

__all__ = ["LOOPBACK_NAMES", "create_app", "is_loopback", "serve"]
