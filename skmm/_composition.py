"""Estimators built from ``(name, estimator, column)`` triples: ModalityFusion and the MultimodalNets.

scikit-learn's ``_BaseComposition`` gives nested parameters
(``image__batch_size``) over ``(name, estimator)`` pairs; here the triples'
attribute is named by ``_triples``, and the HTML display shows one branch per
triple, as ``ColumnTransformer`` does.
"""

from __future__ import annotations

from sklearn.utils.metaestimators import _BaseComposition

from ._table import remember_columns


class TriplesComposition(_BaseComposition):
    """Nested ``get_params`` / ``set_params`` and the HTML branches over the triples in ``self.<_triples>``."""

    _triples = "transformers"

    @property
    def _named_parts(self):
        try:
            return [(name, part) for name, part, _ in getattr(self, self._triples)]
        except (TypeError, ValueError):  # not (yet) a list of triples: fit says so
            return []

    @_named_parts.setter
    def _named_parts(self, value):
        triples = getattr(self, self._triples)
        setattr(self, self._triples, [(name, part, column) for (name, part), (_, _, column) in zip(value, triples)])

    def get_params(self, deep=True):
        return self._get_params("_named_parts", deep=deep)

    def set_params(self, **params):
        self._set_params("_named_parts", **params)
        return self

    def _checked_triples(self):
        """The triples, after checking their shape and names (called by ``fit``)."""
        triples = getattr(self, self._triples)
        if not triples or any(not isinstance(t, tuple) or len(t) != 3 for t in triples):
            raise ValueError(f"{self._triples} must be a non-empty list of (name, estimator, column) triples")
        self._validate_names([name for name, _, _ in triples])
        return triples

    def _remember_columns(self, frame):
        """``n_features_in_`` and ``feature_names_in_`` of the table ``frame`` (called by ``fit``)."""
        remember_columns(self, frame.columns)

    def _sk_visual_block_(self):
        try:
            from sklearn.utils._repr_html.estimator import _VisualBlock
        except ImportError:  # scikit-learn < 1.7 kept it elsewhere
            from sklearn.utils._estimator_html_repr import _VisualBlock

        fitted = f"{self._triples}_"
        triples = getattr(self, fitted) if hasattr(self, fitted) else getattr(self, self._triples)
        names, parts, columns = zip(*triples)
        return _VisualBlock("parallel", parts, names=names, name_details=[str(column) for column in columns])
