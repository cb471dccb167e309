"""Moved to ``skmm.fusion._alignment``; kept so that models saved by skmm 0.1 still load."""

from .fusion._alignment import CCAAlignment, PCAProjection  # noqa: F401
