"""Early fusion: encode the modality columns of a table and fuse them into one feature matrix.

``ModalityFusion`` (and ``make_fusion``) live here; the common spaces that
average / weighted / gated fusion need are in ``_alignment``, the learned
per-row gate in ``_gating``.
"""

from ._fusion import ALIGNMENTS, METHODS, ModalityFusion, make_fusion

__all__ = ["ALIGNMENTS", "METHODS", "ModalityFusion", "make_fusion"]
