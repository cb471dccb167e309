"""MultimodalStackingClassifier: many diverse members over one table, a final estimator on their out-of-fold
probabilities, every item embedded once."""

from __future__ import annotations

import time
import warnings
from numbers import Integral

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import ClassifierMixin, _fit_context, clone
from sklearn.metrics import accuracy_score
from sklearn.model_selection import PredefinedSplit, StratifiedKFold, check_cv
from sklearn.utils import Bunch
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_consistent_length, check_is_fitted

from .._cache import resolve_cache
from .._compat import upgrade_stacking_state
from .._composition import TriplesComposition
from .._table import as_frame
from ..encoders import embedding_encoder
from ._cross_fitting import CrossFittedClassifier, class_labels
from ._final_estimators import default_final_estimator, final_estimator_name
from ._layers_member import read_intermediate_layers, read_present_values
from ._stacking_members import default_stacking_members, member_seed, seed_unset_random_states


class MultimodalStackingClassifier(ClassifierMixin, TriplesComposition):
    """Stack many diverse classifiers of an image + text (+ numbers) table: one estimator, each item embedded once.

    Each member is a classifier of the whole table (a pipeline from the raw
    columns to ``predict_proba``). ``fit`` cross-fits every member (a
    :class:`~skmm.estimators.CrossFittedClassifier`): its out-of-fold
    probabilities (each row's from a fold model that never saw it) train the
    final estimator, and new rows get the average of its fold models, as
    AutoGluon's bagged stacks predict (``refit=True``: one model refitted on
    every row instead, as :class:`~sklearn.ensemble.StackingClassifier`
    does). The members read the shared embedding cache, so however many
    members and folds there are, each image and text goes through its
    encoder once: the cost of stacking is ``len(members) * cv`` fits on
    embeddings (one more per member with ``refit=True``), not embeddings.

    Parameters
    ----------
    modalities : list of (str, transformer, str or list of str) tuples
        Name, transformer (an :class:`~skmm.ImageEncoder`, a
        :class:`~skmm.TextEncoder`, a :class:`~skmm.TabularEncoder`...) and the
        column(s) it reads, as :class:`~skmm.ModalityFusion` takes them. The
        ``"auto"`` members are built from them, and their embedding encoders
        run over the table once before any member fits.
    members : "auto" or list of (str, estimator) tuples, default="auto"
        The classifiers to stack, each with ``predict_proba`` and reading the
        table. ``"auto"``: :func:`~skmm.estimators.default_stacking_members`
        of ``modalities`` (each modality alone, each image and text
        backbone's lower layers, every early-fusion method, an MLP, word and
        character n-grams of each text). That function
        returns the list to start from when you want to drop or add one; its
        options add optional members (``sentiment_lexicon=True``: VADER's
        scores; ``trained_network=True``:
        :class:`~skmm.MultimodalNetClassifier`): pass the list as
        ``members=``. Parameters of given members are reachable as
        ``<member>__<parameter>``.
    final_estimator : classifier, default=None
        Fitted on the members' out-of-fold probabilities, side by side (one
        column per member and class, in the order of ``classes_``). Default:
        :func:`~skmm.estimators.default_final_estimator`, which picks by
        cross-validation on the stack's folds between a LogisticRegression on
        their clipped logarithms and a
        :class:`~skmm.estimators.LogLinearPoolClassifier` (one weight per
        member: the safer with many classes and few rows).
    cv : int, cross-validation generator or iterable, default=5
        The folds of the cross-fitting, the same for every member. An int:
        ``StratifiedKFold(cv, shuffle=True, random_state=random_state)``.
        Each row must be in a fold's test part (with repeated folds, such as
        ``RepeatedStratifiedKFold``, a row's out-of-fold probabilities are
        averaged).
    refit : bool, default=False
        False: a member predicts new rows with the average of its ``cv``
        fold models' probabilities, the models whose out-of-fold
        probabilities the final estimator learned from (the user guide
        compares the two). True: with one model refitted on every row
        (smaller to keep, ``cv`` times faster to predict).
    n_jobs : int, default=None
        Members cross-fitted at once, in threads (they share the in-process
        embedding cache and the loaded models). None: one at a time.
    verbose : int, default=0
        1: a line for the embedding pass, and a line per member as it
        finishes: its out-of-fold accuracy and the seconds it took.
    random_state : int, RandomState instance or None, default=None
        Shuffles the folds of an int ``cv`` and seeds the members: the
        ``"auto"`` ones, and in given ones every ``random_state`` parameter
        left at None (nested ones too; a seed a member was given is kept).

    Attributes
    ----------
    members_ : list of (str, estimator) tuples
        The fitted members: each a :class:`~skmm.estimators.CrossFittedClassifier`
        (its fold models), or with ``refit=True`` the member fitted on every row.
    named_members_ : Bunch
        The fitted members by name.
    member_scores_ : dict
        Member name -> its out-of-fold accuracy (a member's own score,
        before stacking: compare it with the stack's cross-validated one).
    member_fit_times_ : dict
        Member name -> seconds its cross-fitting and refit took.
    final_estimator_ : estimator
        The final estimator, fitted on the out-of-fold probabilities (by
        default a fitted ``GridSearchCV``: ``best_params_["final"]`` is the
        one it chose).
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names seen in ``fit``.

    See Also
    --------
    skmm.estimators.default_stacking_members : the ``"auto"`` members, to edit.
    skmm.make_late_fusion : one model per modality, combined.
    sklearn.ensemble.StackingClassifier : the same idea over feature matrices.

    Notes
    -----
    Every item embedded once holds for encoders with a cache (``cache="auto"``,
    the default: the in-process memory cache, or ``$SKMM_CACHE_DIR``). An
    encoder with ``cache=None`` is taken at its word: nothing is kept, so
    every member embeds its column again in each of its fits, and
    ``fit`` warns that it will. ``n_jobs`` runs members in threads, which
    share the memory cache; under a process backend
    (``joblib.parallel_config(backend="loky")``) give the encoders a disk
    cache (a path), which the processes share.

    Missing modalities: the fused members use the modalities a row has; a
    modality's own member (``"<modality>_logreg"``, a
    :class:`~skmm.estimators.PresentRowsClassifier`) answers the training
    class shares for a row without it. A member of yours that reads one
    modality can be wrapped the same way.

    Examples
    --------
    >>> from skmm import ImageEncoder, MultimodalStackingClassifier, TextEncoder
    >>> from skmm.datasets import make_multimodal_classification
    >>> X, y = make_multimodal_classification(n_samples=60, image_size=32, random_state=0)
    >>> stack = MultimodalStackingClassifier([
    ...     ("image", ImageEncoder("timm:test_efficientnet", weights=None, device="cpu"), "image"),
    ...     ("text", TextEncoder(device="cpu"), "text"),
    ... ], cv=3, random_state=0).fit(X, y)
    >>> list(stack.member_scores_)  # doctest: +NORMALIZE_WHITESPACE
    ['image_logreg', 'text_logreg', 'image_layers', 'text_layers', 'concat_logreg', 'average_logreg',
     'weighted_logreg', 'gated_logreg', 'concat_mlp', 'text_ngrams']
    >>> stack.predict_proba(X[:2]).shape
    (2, 3)
    """

    _triples = "modalities"
    _parameter_constraints = {
        "modalities": [list],
        "members": [StrOptions({"auto"}), list],
        "final_estimator": [HasMethods(["fit", "predict"]), None],
        "cv": ["cv_object"],
        "refit": ["boolean"],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(self, modalities, *, members="auto", final_estimator=None, cv=5, refit=False, n_jobs=None,
                 verbose=0, random_state=None):
        self.modalities = modalities
        self.members = members
        self.final_estimator = final_estimator
        self.cv = cv
        self.refit = refit
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state

    # -- nested parameters: the modalities' (``image__batch_size``) and the given members' ---------------
    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        if deep:
            for name, member in _named_members(self.members):
                params[name] = member
                if hasattr(member, "get_params"):
                    params.update({f"{name}__{key}": value for key, value in member.get_params(deep=True).items()})
        return params

    def set_params(self, **params):
        # As scikit-learn's _BaseComposition: the whole list first, then members replaced by name, then the rest.
        if "members" in params:
            self.members = params.pop("members")
        named = dict(_named_members(self.members))
        replaced = {name: params.pop(name) for name in list(params) if name in named}
        if replaced:
            self.members = [(name, replaced.get(name, member)) for name, member in named.items()]
        return super().set_params(**params)

    # -- fitting -------------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=False)  # the members are validated as they fit
    def fit(self, X, y):
        """Cross-fit every member (refit it on every row with ``refit=True``), and fit the final estimator.

        Parameters
        ----------
        X : pandas.DataFrame or dict of columns
            The table: the modalities' columns (image paths, bytes, arrays;
            texts; numbers).
        y : array-like of shape (n_samples,)
            The classes.

        Returns
        -------
        self : object
        """
        frame = as_frame(X)
        y = self._checked_target(frame, y)
        self._remember_columns(frame)
        triples = self._checked_triples()
        members = self._checked_members(triples)
        splits = list(self._folds().split(frame, y))  # fixed once: every member's out-of-fold rows are the same
        self._embed_each_item_once(triples, frame, n_fits=len(members) * (len(splits) + int(self.refit)))
        members = read_intermediate_layers(members, frame, optional=isinstance(self.members, str))
        splits = _fixed_folds(splits, len(y))
        jobs = Parallel(n_jobs=self.n_jobs, prefer="threads", return_as="generator")(
            delayed(_cross_fit)(name, member, frame, y, splits, self.refit) for name, member in members)
        self.members_, self.member_scores_, self.member_fit_times_, out_of_fold = [], {}, {}, []
        for (name, _), (probabilities, fitted, seconds) in zip(members, jobs):
            self.members_.append((name, fitted))
            self.member_scores_[name] = float(accuracy_score(y, self.classes_[probabilities.argmax(axis=1)]))
            self.member_fit_times_[name] = seconds
            out_of_fold.append(probabilities)
            if self.verbose:
                print(f"[stacking] member {name:<22} out-of-fold accuracy {self.member_scores_[name]:.3f} "
                      f"({seconds:.1f} s)", flush=True)
        final = self.final_estimator
        if final is None:  # chosen on the members' folds of the out-of-fold rows
            final = default_final_estimator(self.classes_, cv=splits)
        self.final_estimator_ = clone(final).fit(np.hstack(out_of_fold), y)
        if self.verbose and self.final_estimator is None:
            _say_which_final(self.final_estimator_)
        return self

    def _checked_target(self, frame, y):
        check_consistent_length(frame, y)
        y, self.classes_ = class_labels(y)
        return y

    def _checked_members(self, triples):
        """The members to fit, as (name, unfitted estimator): the given ones after checks, or the ``"auto"`` ones."""
        if isinstance(self.members, str):
            return default_stacking_members(triples, random_state=self.random_state)
        if not self.members or any(not isinstance(pair, tuple) or len(pair) != 2 for pair in self.members):
            raise ValueError("members must be 'auto' or a non-empty list of (name, estimator) tuples")
        # Given members' parameters live beside the modalities' (``<name>__<parameter>``): one namespace.
        self._validate_names([name for name, _, _ in triples] + [name for name, _ in self.members])
        for name, member in self.members:
            if not (hasattr(member, "fit") and hasattr(member, "predict_proba")):
                raise TypeError(f"member {name!r} must be a classifier with fit and predict_proba, got {member!r}")
        # Seeded as the "auto" members are: default_stacking_members(modalities) passed as members, or a list
        # edited from it, fits as members="auto" does under the same random_state.
        seed = member_seed(self.random_state)
        return [(name, seed_unset_random_states(member, seed)) for name, member in self.members]

    def _folds(self):
        if isinstance(self.cv, Integral):
            return StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state)
        return check_cv(self.cv, classifier=True)

    def _embed_each_item_once(self, triples, frame, n_fits):
        """Run each modality's embedding encoder over its column once, before the members fit.

        The members (in threads, with ``n_jobs``) then all read the cache:
        no two of them embed the same item at the same time, and an item
        that cannot be read fails here, before any member's fit is spent.
        """
        start, embedded = time.perf_counter(), []
        for name, transformer, column in triples:
            encoder = embedding_encoder(transformer)
            if encoder is None or not isinstance(column, str):
                continue  # not an embedding (numbers, TF-IDF...): cheap, and not cached
            if resolve_cache(encoder.cache) is None:
                warnings.warn(f"modality {name!r}: its encoder has cache=None, so the stack's {n_fits} fits "
                              f"embed column {column!r} again each time they read it; leave cache='auto' to "
                              "embed each item once", UserWarning, stacklevel=3)
                continue
            if column not in frame.columns:
                raise ValueError(f"modality {name!r} reads column {column!r}, which X does not have "
                                 f"(columns: {list(frame.columns)})")
            read_present_values(transformer, frame[column])
            embedded.append(name)
        if self.verbose and embedded:
            print(f"[stacking] embedded {', '.join(embedded)} once ({time.perf_counter() - start:.1f} s)",
                  flush=True)

    # -- predicting ----------------------------------------------------------------------------------
    def _member_probabilities(self, X):
        check_is_fitted(self, "final_estimator_")
        frame = as_frame(X)
        return np.hstack([member.predict_proba(frame) for _, member in self.members_])

    def predict(self, X):
        """Predict the class of each row.

        Parameters
        ----------
        X : pandas.DataFrame or dict of columns

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        return self.final_estimator_.predict(self._member_probabilities(X))

    @available_if(lambda self: _final_has(self, "predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of each row, from the final estimator.

        Parameters
        ----------
        X : pandas.DataFrame or dict of columns

        Returns
        -------
        probabilities : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        return self.final_estimator_.predict_proba(self._member_probabilities(X))

    def __setstate__(self, state):
        super().__setstate__(upgrade_stacking_state(state))

    @property
    def named_members_(self):
        """The fitted members by name (a :class:`~sklearn.utils.Bunch`)."""
        check_is_fitted(self, "members_")
        return Bunch(**dict(self.members_))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # a table of images and texts: see tests/test_stacking.py
        tags.input_tags.string = True
        return tags


def _final_has(stack, method):
    """Whether the final estimator (fitted, else given, else the default, which has both) has ``method``."""
    if hasattr(stack, "final_estimator_"):
        return hasattr(stack.final_estimator_, method)
    return stack.final_estimator is None or hasattr(stack.final_estimator, method)


def _say_which_final(search):
    """The verbose line of the default final estimator: the cross-validated accuracy of each candidate."""
    scores = ", ".join(f"{final_estimator_name(params['final'])} {score:.3f}" for params, score in
                       zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]))
    print(f"[stacking] final estimator {final_estimator_name(search)} (cross-validated accuracy: {scores})",
          flush=True)


def _named_members(members):
    """The (name, estimator) pairs of ``members``; none while it is "auto" or not (yet) a list of pairs."""
    if not isinstance(members, list) or any(not isinstance(pair, tuple) or len(pair) != 2 for pair in members):
        return []
    return members


def _fixed_folds(splits, n_rows):
    """``splits`` as a :class:`~sklearn.model_selection.PredefinedSplit` (one fold number a row) when they partition
    the rows, as k-fold splits do: the same folds, where a list of index arrays would hold every row ``k``
    times in each member's ``cv`` and fill its repr. Other splits (repeated folds) are kept as they are."""
    test_fold = np.full(n_rows, -1)
    for k, (train, test) in enumerate(splits):
        if len(train) + len(test) != n_rows or (test_fold[test] != -1).any():
            return splits
        test_fold[test] = k
    return PredefinedSplit(test_fold) if (test_fold != -1).all() else splits


def _cross_fit(name, member, frame, y, splits, refit):
    """One member's out-of-fold probabilities on ``splits``, the member fitted for prediction (its fold models, or
    refitted on every row), and the seconds."""
    start = time.perf_counter()
    try:
        folds = CrossFittedClassifier(member, cv=splits).fit(frame, y)
        fitted = clone(member).fit(frame, y) if refit else folds
    except Exception as error:
        if hasattr(error, "add_note"):  # Python 3.11+: the traceback says which member failed, type unchanged
            error.add_note(f"(raised while fitting the stacking member {name!r})")
        raise
    return folds.out_of_fold_proba_, fitted, time.perf_counter() - start
