"""Moved to ``skmm.fusion._gating``; kept so that models saved by skmm 0.1 still load."""

from .fusion._gating import ModalityGate  # noqa: F401
