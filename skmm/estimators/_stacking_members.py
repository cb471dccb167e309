"""The members ``MultimodalStackingClassifier(members="auto")`` builds, and its default final estimator.

Kept apart from the estimator so that a user can call :func:`default_stacking_members`, edit the list and pass it
back as ``members=``. The functions that the pipelines call (``texts_of``, ``log_of_clipped``) live at module level
so that fitted stacks pickle and load with skops.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, _fit_context, clone
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline, make_union
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, validate_params
from sklearn.utils.validation import check_is_fitted

from .._inputs import is_missing, to_text
from .._table import as_frame, present_mask
from ..encoders import TextEncoder, embedding_encoder
from ..fusion import ModalityFusion
from ._cross_fitting import class_labels, in_classes
from ._layers_member import intermediate_layers_member
from ._net_data import network_reads
from .mlp import TorchMLPClassifier
from .multimodal_net import MultimodalNetClassifier

# The fused members: every early-fusion method (on MVSA each scores within a point of the others, but they err on
# different rows, which is what a stacker feeds on).
FUSED_METHODS = ("concat", "average", "weighted", "gated")
# Where probabilities are clipped before their log: a member sure of a class (p = 0) still gives a finite odds.
_SMALLEST_PROBABILITY = 1e-6
_VADER_SCORES = ("neg", "neu", "pos", "compound")


def texts_of(column):
    """The items of a text column as ``str`` (a missing text is the empty one: it has no n-gram)."""
    return ["" if is_missing(item) else to_text(item) for item in column]


def log_of_clipped(probabilities):
    """``log(clip(p, 1e-6, 1))``: the members' probabilities as the log-odds a linear stacker reads best."""
    return np.log(np.clip(probabilities, _SMALLEST_PROBABILITY, 1.0))


def vader_scores(column):
    """VADER's negative, neutral, positive and compound scores of each text (needs ``vaderSentiment``)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    scores = [analyzer.polarity_scores(text) for text in texts_of(column)]
    return np.array([[score[key] for key in _VADER_SCORES] for score in scores], dtype=np.float64)


def _vader_feature_names(transformer, input_features):
    return np.asarray(_VADER_SCORES, dtype=object)


def log_probability_logistic_regression():
    """The default final estimator: LogisticRegression on the log of the members' clipped probabilities.

    A linear stacker reads odds better than probabilities: a confident
    member's 0.99 and 0.999 differ little as probabilities, tenfold as odds
    (``benchmarks/mvsa.py``'s best stacks use it). Strongly regularised
    (``C=0.1``): it reads one column per member and class, which on a small
    table with many classes outnumber what the rows can pin down (less
    regularised, such a stack fell below its best member: see
    docs/benchmarks.md).

    Returns
    -------
    final_estimator : Pipeline
        ``FunctionTransformer(log_of_clipped)`` then ``LogisticRegression(C=0.1, max_iter=1000)``.

    Examples
    --------
    >>> from skmm.estimators import log_probability_logistic_regression
    >>> [name for name, _ in log_probability_logistic_regression().steps]
    ['log_odds', 'logistic_regression']
    """
    return Pipeline([("log_odds", FunctionTransformer(log_of_clipped, feature_names_out="one-to-one")),
                     ("logistic_regression", LogisticRegression(C=0.1, max_iter=1000))])


class PresentRowsClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """A classifier of the rows where a modality is present; the training class shares where it is missing.

    A one-modality member of a stack cannot read a row without its modality
    (:class:`~skmm.ModalityFusion` refuses a row with nothing to encode). This
    wrapper fits ``estimator`` on the rows that have a value in ``columns``
    and, for the others, answers the class shares of the rows it was fitted
    on: no evidence either way, which the stack's final estimator reads as
    such, while the other members speak for the row.

    Parameters
    ----------
    estimator : classifier with ``predict_proba``
        Reads the table (a pipeline starting with a fusion, a column selector).
    columns : str or list of str
        The modality's column (or columns: present where any of them is).

    Attributes
    ----------
    estimator_ : classifier
        ``estimator`` fitted on the rows where the modality is present.
    class_prior_ : ndarray of shape (n_classes,)
        The class shares of the training rows, answered where it is missing.
    classes_ : ndarray of shape (n_classes,)

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.compose import make_column_transformer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skmm.estimators import PresentRowsClassifier
    >>> X = pd.DataFrame({"price": [1.0, 2.0, None, 8.0, 9.0, 10.0]})
    >>> member = PresentRowsClassifier(make_pipeline(make_column_transformer((StandardScaler(), ["price"])),
    ...                                              LogisticRegression()), "price")
    >>> member.fit(X, [0, 0, 0, 1, 1, 1]).predict_proba(X)[2]  # no price: the class shares
    array([0.5, 0.5])
    """

    _parameter_constraints = {"estimator": [HasMethods(["fit", "predict_proba"])], "columns": [str, list]}

    def __init__(self, estimator, columns):
        self.estimator = estimator
        self.columns = columns

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fit ``estimator`` on the rows with the modality; remember the class shares of every row.

        Parameters
        ----------
        X : pandas.DataFrame
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : object
        """
        frame, (y, self.classes_) = as_frame(X), class_labels(y)
        self.class_prior_ = np.unique(y, return_counts=True)[1] / len(y)
        present = self._present(frame)
        if not present.any():
            raise ValueError(f"no training row has a value in {self.columns!r}: nothing to fit the member on")
        self.estimator_ = clone(self.estimator).fit(frame[present], y[present])
        return self

    def _present(self, frame):
        return present_mask(frame[self.columns])

    def predict_proba(self, X):
        """Class probabilities: the estimator's where the modality is present, the class shares elsewhere.

        Parameters
        ----------
        X : pandas.DataFrame

        Returns
        -------
        probabilities : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        frame = as_frame(X)
        probabilities = np.tile(self.class_prior_, (len(frame), 1))
        present = self._present(frame)
        if present.any():
            probabilities[present] = in_classes(self.classes_, self.estimator_,
                                                self.estimator_.predict_proba(frame[present]))
        return probabilities

    def predict(self, X):
        """The most probable class of each row.

        Parameters
        ----------
        X : pandas.DataFrame

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags


def _logistic_regression(C=1.0):
    return LogisticRegression(C=C, max_iter=1000)


def _reads_texts(transformer):
    """Whether a modality's transformer is a TextEncoder (or a pipeline ending in one): its column holds texts."""
    return isinstance(embedding_encoder(transformer), TextEncoder)


def text_ngrams_member(column):
    """Word 1-2-gram and character 2-5-gram TF-IDF of a text column, then LogisticRegression(C=10).

    What a sentence embedding pools away (a rare word, a hashtag, an emoticon,
    spelling) n-grams keep; fitted in seconds. As ``benchmarks/mvsa.py``'s
    ``text_tfidf`` member (C=10: tens of thousands of sparse features, most of
    them rare, want little regularisation).

    Parameters
    ----------
    column : str
        The text column of the table.

    Returns
    -------
    member : Pipeline
        Reads ``column`` of a DataFrame.
    """
    # Words from their first occurrence: a column of one-word names (every word unique) would leave no term at
    # min_df=2; on MVSA the stack scored the same either way (docs/benchmarks.md).
    ngrams = make_union(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True))
    texts = make_pipeline(FunctionTransformer(texts_of), ngrams)
    return Pipeline([("select", ColumnTransformer([("tfidf", texts, column)])), ("clf", _logistic_regression(C=10))])


def text_sentiment_member(column):
    """VADER's four sentiment-lexicon scores of a text column, scaled, then LogisticRegression.

    Needs the optional ``vaderSentiment`` package (``pip install vaderSentiment``,
    or the ``skmm[bench]`` extra); tuned on tweets.

    Parameters
    ----------
    column : str
        The text column of the table.

    Returns
    -------
    member : Pipeline

    Raises
    ------
    ImportError
        When ``vaderSentiment`` is not installed, saying how to install it.
    """
    try:
        import vaderSentiment  # noqa: F401
    except ImportError as error:
        raise ImportError("the sentiment-lexicon member needs VADER: pip install vaderSentiment") from error
    lexicon = FunctionTransformer(vader_scores, feature_names_out=_vader_feature_names)
    return Pipeline([("select", ColumnTransformer([("vader", lexicon, column)])), ("scale", StandardScaler()),
                     ("clf", _logistic_regression())])


def member_seed(random_state):
    """The seed of the members: an int (or None) as given; a RandomState draws one, as scikit-learn's ensembles do."""
    if random_state is None or isinstance(random_state, Integral):
        return random_state
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def seed_unset_random_states(member, seed):
    """``member``, or a clone of it whose ``random_state`` parameters left at None (nested ones too) are ``seed``."""
    if seed is None or not hasattr(member, "get_params"):
        return member
    unset = {key: seed for key, value in member.get_params(deep=True).items()
             if (key == "random_state" or key.endswith("__random_state")) and value is None}
    return clone(member).set_params(**unset) if unset else member


@validate_params(
    {"modalities": [list], "random_state": ["random_state"], "sentiment_lexicon": ["boolean"],
     "trained_network": ["boolean"], "intermediate_layers": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def default_stacking_members(modalities, *, random_state=None, sentiment_lexicon=False, trained_network=False,
                             intermediate_layers=True):
    """The members ``MultimodalStackingClassifier(members="auto")`` stacks: a list to start from.

    Every member reads the whole table, so any of them can be dropped, and
    any scikit-learn classifier with ``predict_proba`` over the same table
    added, before the list is passed as ``members=``. The encoders are clones
    of the given ones: every member finds their embeddings in the shared
    cache (the network, what its backbones' frozen trunks make of each
    item).

    - ``"<modality>_logreg"``, one per modality: its encoder, then
      LogisticRegression, in a :class:`PresentRowsClassifier` (the class
      shares for a row without the modality);
    - ``"<modality>_layers"``, for each modality that is an
      :class:`~skmm.ImageEncoder` or a :class:`~skmm.TextEncoder` of one
      column (with ``intermediate_layers=True``, the default): its backbone
      read below its output, then LogisticRegression, also in a
      :class:`PresentRowsClassifier` (see :func:`intermediate_layers_member`;
      one more pass of the backbone over each item, cached as the
      embeddings are);
    - with two modalities or more, ``"<method>_logreg"`` for each early
      fusion ``method`` in concat, average, weighted and gated:
      :class:`~skmm.ModalityFusion`, then LogisticRegression;
    - ``"concat_mlp"``: the modalities side by side, then
      :class:`~skmm.TorchMLPClassifier` (a non-linear view; on MVSA it cost
      about twice a LogisticRegression member);
    - ``"<modality>_ngrams"``, for each text column (read by a
      :class:`~skmm.TextEncoder`; named after the first modality that
      reads it): word and character TF-IDF, then
      LogisticRegression(C=10) (see :func:`text_ngrams_member`);
    - ``"<modality>_sentiment"`` with ``sentiment_lexicon=True``, for each
      text column: VADER's scores (see :func:`text_sentiment_member`; an
      extra package);
    - ``"network"`` with ``trained_network=True``:
      :class:`~skmm.MultimodalNetClassifier` at its defaults (the top block
      of each backbone trained with the fusion and head), the one member
      whose representation learns the task. It reads the image and text
      modalities (those :func:`~skmm.estimators.network_can_read` accepts) and leaves the
      others (numbers, categories) to the other members. It costs minutes a
      fit where the others cost seconds; on MVSA it moved the stack by 0.15
      points.

    Parameters
    ----------
    modalities : list of (str, transformer, str or list of str) tuples
        As :class:`~skmm.ModalityFusion` takes them.
    random_state : int, RandomState instance or None, default=None
        Seeds the MLP and network members.
    sentiment_lexicon : bool, default=False
        Add VADER's sentiment scores of each text modality.
    trained_network : bool, default=False
        Add the trained network.
    intermediate_layers : bool, default=True
        Add the ``"<modality>_layers"`` members.

    Returns
    -------
    members : list of (str, estimator) tuples

    Examples
    --------
    >>> from skmm import ImageEncoder, TextEncoder
    >>> from skmm.estimators import default_stacking_members
    >>> members = default_stacking_members([("image", ImageEncoder(), "image"), ("text", TextEncoder(), "text")])
    >>> [name for name, _ in members]  # doctest: +NORMALIZE_WHITESPACE
    ['image_logreg', 'text_logreg', 'image_layers', 'text_layers', 'concat_logreg', 'average_logreg',
     'weighted_logreg', 'gated_logreg', 'concat_mlp', 'text_ngrams']
    """
    triples = [tuple(triple) for triple in modalities]
    if not triples or any(len(triple) != 3 for triple in triples):
        raise ValueError("modalities must be a non-empty list of (name, transformer, column) triples")
    readable = [triple for triple in triples if network_reads(*triple[1:])]
    if trained_network and not readable:
        raise ValueError("trained_network=True needs at least one modality that is an ImageEncoder or a "
                         "TextEncoder of one column (the network trains their backbones' top blocks)")
    seed = member_seed(random_state)

    def fused(method, triples=triples):
        return ModalityFusion([(name, clone(transformer), column) for name, transformer, column in triples],
                              method=method)

    # One modality's member cannot read a row without it: the class shares there (the others speak for the row).
    members = [(f"{name}_logreg", PresentRowsClassifier(
        Pipeline([("fuse", fused("concat", [(name, transformer, column)])), ("clf", _logistic_regression())]), column))
        for name, transformer, column in triples]
    if intermediate_layers:
        members += [(f"{name}_layers", PresentRowsClassifier(intermediate_layers_member(transformer, column), column))
                    for name, transformer, column in readable]
    if len(triples) > 1:
        members += [(f"{method}_logreg", Pipeline([("fuse", fused(method)), ("clf", _logistic_regression())]))
                    for method in FUSED_METHODS]
    members.append(("concat_mlp", Pipeline([("fuse", fused("concat")),
                                            ("clf", TorchMLPClassifier(random_state=seed))])))
    # One n-gram (and lexicon) member per text column, named after its first modality: two encoders of one
    # column (a small and a large text model) would otherwise add two identical members.
    first_reader = {}
    for name, transformer, column in triples:
        if isinstance(column, str) and _reads_texts(transformer):
            first_reader.setdefault(column, name)
    texts = [(name, column) for column, name in first_reader.items()]
    members += [(f"{name}_ngrams", text_ngrams_member(column)) for name, column in texts]
    if sentiment_lexicon:
        members += [(f"{name}_sentiment", text_sentiment_member(column)) for name, column in texts]
    if trained_network:
        members.append(("network", MultimodalNetClassifier(
            [(name, clone(transformer), column) for name, transformer, column in readable], random_state=seed)))
    return members
