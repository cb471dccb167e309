"""MultimodalStackingClassifier: out-of-fold stacking of many members over one table, each item embedded once."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import PredefinedSplit, RepeatedStratifiedKFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils import estimator_checks as checks

from skmm import (ImageEncoder, ModalityFusion, MultimodalNetClassifier, MultimodalStackingClassifier, TabularEncoder,
                  TextEncoder, persistence)
from skmm.datasets import make_multimodal_classification
from skmm.encoders.trunks import TrunkSplitError
from skmm.estimators import default_stacking_members, network_can_read
from skmm.estimators._stacking_members import text_ngrams_member, text_sentiment_member

from .conftest import DEVICE, TINY_IMAGE

# The input is a table of images and texts, so the tags skip sklearn's data-driven checks (as the network's and
# the encoders' do); these API checks run on the defaults (only the modalities given).
API_CHECKS = [checks.check_estimator_cloneable, checks.check_estimator_repr, checks.check_no_attributes_set_in_init,
              checks.check_do_not_raise_errors_in_init_or_set_params, checks.check_mixin_order,
              checks.check_valid_tag_types, checks.check_estimator_tags_renamed,
              checks.check_parameters_default_constructible, checks.check_get_params_invariance,
              checks.check_set_params]
AUTO_MEMBERS = ["image_logreg", "text_logreg", "image_layers", "text_layers", "concat_logreg", "average_logreg",
                "weighted_logreg", "gated_logreg", "concat_mlp", "text_ngrams"]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The MLP and gate members train on tens of rows: on a busy small CPU, torch's second thread only waits for a
    core (a fit measured 100 times slower), so these tests train them on one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _modalities(tiny_text_model, **image_params):
    return [("image", ImageEncoder(**{**TINY_IMAGE, **image_params}), "image"),
            ("text", TextEncoder(tiny_text_model, device=DEVICE), "text")]


@pytest.fixture(scope="module")
def data():
    return make_multimodal_classification(n_samples=90, image_size=32, random_state=0)


@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_api_checks_with_default_parameters(check, tiny_text_model):
    check(MultimodalStackingClassifier.__name__, MultimodalStackingClassifier(_modalities(tiny_text_model)))


@pytest.mark.parametrize("check", [checks.check_get_params_invariance, checks.check_set_params],
                         ids=lambda c: c.__name__)
def test_parameter_checks_with_given_members(check, tiny_text_model):
    members = [("ngrams", text_ngrams_member("text")), ("logreg", LogisticRegression())]
    check(MultimodalStackingClassifier.__name__, MultimodalStackingClassifier(_modalities(tiny_text_model),
                                                                              members=members))


def test_each_item_is_embedded_once_over_a_whole_fit(tiny_text_model, data, embedded_items, capsys):
    X, y = data
    stack = MultimodalStackingClassifier(_modalities(tiny_text_model), random_state=0, verbose=1).fit(X, y)
    # 10 members x 5 folds = 50 fits, and each distinct image and text went through its model once for its
    # embedding and once for its intermediate layers (the "_layers" members)
    distinct_images, distinct_texts = {image.tobytes() for image in X["image"]}, X["text"].nunique()
    assert len(embedded_items) == 2 * (len(distinct_images) + distinct_texts)
    new = make_multimodal_classification(n_samples=12, image_size=32, random_state=1)[0]
    stack.predict_proba(new)  # 10 members x 5 fold models read the new rows: each pass once too
    assert len(embedded_items) == 2 * (len(distinct_images) + distinct_texts + 12 + new["text"].nunique())

    assert [name for name, _ in stack.members_] == AUTO_MEMBERS == list(stack.member_scores_)
    assert all(0 <= score <= 1 for score in stack.member_scores_.values())
    assert stack.member_scores_["concat_logreg"] > stack.member_scores_["image_logreg"]  # both modalities help
    assert all(seconds > 0 for seconds in stack.member_fit_times_.values())
    assert stack.named_members_.text_ngrams is stack.members_[-1][1]
    assert list(stack.classes_) == [0, 1, 2] and stack.n_features_in_ == 2
    assert list(stack.feature_names_in_) == ["image", "text"]
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\[stacking\] embedded image, text once \(\d+\.\d s\)", lines[0])
    assert len(lines) == 1 + len(AUTO_MEMBERS) + 1
    for line, (name, score) in zip(lines[1:], stack.member_scores_.items()):
        assert re.fullmatch(rf"\[stacking\] member {name} +out-of-fold accuracy {score:.3f} \(\d+\.\d s\)", line)
    chosen = type(stack.final_estimator_.best_estimator_[-1]).__name__
    regression, pool = stack.final_estimator_.cv_results_["mean_test_score"]
    assert lines[-1] == (f"[stacking] final estimator {chosen} (cross-validated accuracy: LogisticRegression "
                         f"{regression:.3f}, LogLinearPoolClassifier {pool:.3f})")
    assert stack.score(X, y) > 0.9


def test_without_a_cache_each_fit_embeds_again_and_fit_says_so(tiny_text_model, data, embedded_items):
    X, y = data
    modalities = _modalities(tiny_text_model, cache=None)
    members = default_stacking_members(modalities)[:1]  # image_logreg
    with pytest.warns(UserWarning, match=r"modality 'image': its encoder has cache=None, so the stack's 3 fits"):
        MultimodalStackingClassifier(modalities, members=members, cv=3).fit(X, y)
    distinct_texts = X["text"].nunique()
    # The text encoder, cached, was run once up front; the image member embedded every row in each of 3 fold fits
    # (its training rows to fit, the others to predict).
    assert len(embedded_items) == distinct_texts + 3 * len(X)


def test_members_run_in_threads_embed_once_and_predict_the_same(tiny_text_model, data, embedded_items):
    X, y = data
    members = [pair for pair in default_stacking_members(_modalities(tiny_text_model))
               if pair[0] in ("image_logreg", "concat_logreg", "weighted_logreg", "text_ngrams")]
    sequential = MultimodalStackingClassifier(_modalities(tiny_text_model), members=members, cv=3, random_state=0)
    expected = sequential.fit(X, y).predict_proba(X)
    assert len(embedded_items) == len({image.tobytes() for image in X["image"]}) + X["text"].nunique()
    parallel = clone(sequential).set_params(n_jobs=2).fit(X, y)
    np.testing.assert_allclose(parallel.predict_proba(X), expected, atol=1e-12)
    assert parallel.member_scores_ == sequential.member_scores_


def test_no_leak_labels_unrelated_to_the_inputs_score_at_chance(tiny_text_model):
    X, _ = make_multimodal_classification(n_samples=120, image_size=32, random_state=2)
    y = np.random.default_rng(0).integers(0, 3, len(X))  # unrelated to the rows: 1/3 is the best any model can do
    stack = MultimodalStackingClassifier(_modalities(tiny_text_model), cv=3, random_state=0).fit(X, y)
    # Each fold model learns its training rows' labels by heart; the out-of-fold predictions must not have.
    splits = StratifiedKFold(3, shuffle=True, random_state=0).split(X, y)  # the stack's folds (cv=3, random_state=0)
    for fold, (train, _) in zip(stack.named_members_["concat_mlp"].estimators_, splits, strict=True):
        assert fold.score(X.iloc[train], y[train]) > 0.9
    # 120 rows at chance: accuracy 0.33 +- 0.043; 0.55 is 5 standard deviations above, ~1 where the rows leaked
    assert max(stack.member_scores_.values()) < 0.55, stack.member_scores_
    outer = cross_val_score(stack, X, y, cv=StratifiedKFold(2, shuffle=True, random_state=1))
    assert outer.mean() < 0.5, outer  # 2 x 60 test rows: 0.5 is 3.9 standard deviations above chance


def test_clone_pickle_and_skops_round_trips_predict_the_same(tiny_text_model, data, tmp_path):
    X, y = data
    stack = MultimodalStackingClassifier(_modalities(tiny_text_model), cv=3, random_state=0).fit(X, y)
    expected = stack.predict_proba(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(stack)).predict_proba(X), expected)
    persistence.dump(stack, tmp_path / "stack.skops")
    assert persistence.untrusted_types(tmp_path / "stack.skops") == []
    np.testing.assert_array_equal(persistence.load(tmp_path / "stack.skops").predict_proba(X), expected)
    np.testing.assert_array_equal(persistence.load(tmp_path / "stack.skops").predict(X), stack.predict(X))
    refitted = clone(stack).fit(X, y)  # the same parameters and random_state: the same stack
    assert not hasattr(clone(stack), "members_")
    np.testing.assert_allclose(refitted.predict_proba(X), expected, atol=1e-10)


def test_members_predict_with_their_fold_models_or_with_refit_one_model_on_every_row(tiny_text_model, data):
    X, y = data
    members = [pair for pair in default_stacking_members(_modalities(tiny_text_model))
               if pair[0] in ("concat_logreg", "text_ngrams")]
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    bagged = MultimodalStackingClassifier(_modalities(tiny_text_model), members=members, cv=folds).fit(X, y)
    refitted = clone(bagged).set_params(refit=True).fit(X, y)
    # The same out-of-fold probabilities, so the same final estimator; only what predicts new rows differs.
    assert bagged.member_scores_ == refitted.member_scores_
    out_of_fold = np.hstack([member.out_of_fold_proba_ for _, member in bagged.members_])
    np.testing.assert_allclose(bagged.final_estimator_.predict_proba(out_of_fold),
                               refitted.final_estimator_.predict_proba(out_of_fold))
    new = make_multimodal_classification(n_samples=12, image_size=32, random_state=1)[0]
    for name, member in members:
        folds_of_member = bagged.named_members_[name]
        assert len(folds_of_member.estimators_) == 3
        np.testing.assert_allclose(folds_of_member.predict_proba(new),
                                   np.mean([fold.predict_proba(new) for fold in folds_of_member.estimators_], axis=0))
        np.testing.assert_allclose(refitted.named_members_[name].predict_proba(new),
                                   clone(member).fit(X, y).predict_proba(new))
    assert not np.allclose(bagged.predict_proba(new), refitted.predict_proba(new))


def test_members_and_final_estimator_keep_the_stacks_folds_as_one_fold_number_a_row(tiny_text_model, data):
    X, y = data
    members = [pair for pair in default_stacking_members(_modalities(tiny_text_model)) if pair[0] == "concat_logreg"]
    stack = MultimodalStackingClassifier(_modalities(tiny_text_model), members=members, random_state=0).fit(X, y)
    member_folds, final_folds = stack.members_[0][1].cv, stack.final_estimator_.cv
    assert isinstance(member_folds, PredefinedSplit)
    np.testing.assert_array_equal(final_folds.test_fold, member_folds.test_fold)
    expected = StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)
    for (train, test), (expected_train, expected_test) in zip(member_folds.split(), expected, strict=True):
        np.testing.assert_array_equal(train, expected_train)
        np.testing.assert_array_equal(test, expected_test)
    assert len(repr(final_folds)) < 100  # the list of index arrays it replaces: thousands of characters
    # Folds that test a row more than once are kept as they are (each row's probabilities: their average).
    repeated = clone(stack).set_params(cv=RepeatedStratifiedKFold(n_splits=3, n_repeats=2, random_state=0)).fit(X, y)
    assert isinstance(repeated.members_[0][1].cv, list) and len(repeated.members_[0][1].cv) == 6


def test_a_stack_saved_before_refit_existed_loads_as_refitted(tiny_text_model, data):
    X, y = data
    members = [pair for pair in default_stacking_members(_modalities(tiny_text_model)) if pair[0] == "text_logreg"]
    stack = MultimodalStackingClassifier(_modalities(tiny_text_model), members=members, cv=2, refit=True).fit(X, y)
    state = stack.__getstate__()
    del state["refit"]  # as older versions pickled it: their members were refitted on every row
    old = MultimodalStackingClassifier.__new__(MultimodalStackingClassifier)
    old.__setstate__(state)
    assert old.get_params()["refit"] is True
    np.testing.assert_array_equal(old.predict_proba(X), stack.predict_proba(X))


def test_get_and_set_params_reach_into_given_members(tiny_text_model, data):
    X, y = data
    modalities = _modalities(tiny_text_model)
    concat = Pipeline([("fuse", ModalityFusion(modalities)), ("clf", LogisticRegression())])
    stack = MultimodalStackingClassifier(modalities, members=[("ngrams", text_ngrams_member("text")),
                                                              ("concat", concat)], final_estimator=LogisticRegression())
    params = stack.get_params(deep=True)
    assert params["ngrams__clf__C"] == 10 and params["concat__clf"] is concat.named_steps["clf"]
    assert params["image__batch_size"] == 64  # the modalities' encoders, as in ModalityFusion
    stack.set_params(ngrams__clf__C=0.5, concat__fuse__method="average", image__batch_size=7)
    assert stack.members[0][1].named_steps["clf"].C == 0.5 and concat.named_steps["fuse"].method == "average"
    assert stack.modalities[0][1].batch_size == 7
    replacement = Pipeline([("fuse", ModalityFusion(modalities[:1])), ("clf", LogisticRegression(C=2.0))])
    stack.set_params(concat=replacement)
    assert stack.members[1] == ("concat", replacement) and stack.get_params()["concat__clf__C"] == 2.0
    stack.fit(X, y)
    # Each fitted member is its fold models (a CrossFittedClassifier), each one a fitted clone of the given member.
    assert all(fold.named_steps["clf"].C == 0.5 for fold in stack.named_members_.ngrams.estimators_)
    assert stack.named_members_.concat.estimators_[0].named_steps["fuse"].modality_weights_ == {"image": 1.0}
    assert stack.final_estimator_.coef_.shape == (3, 2 * 3)  # 2 members x 3 classes, raw probabilities
    assert stack.predict_proba(X).shape == (90, 3)
    np.testing.assert_array_equal(stack.predict(X), stack.final_estimator_.predict(
        np.hstack([member.predict_proba(X) for _, member in stack.members_])))


def test_given_members_are_checked_before_any_fit(tiny_text_model, data):
    X, y = data
    modalities = _modalities(tiny_text_model)
    with pytest.raises(ValueError, match="conflict|not unique"):
        MultimodalStackingClassifier(modalities, members=[("image", LogisticRegression())]).fit(X, y)
    with pytest.raises(TypeError, match="member 'svm' must be a classifier with fit and predict_proba"):
        MultimodalStackingClassifier(modalities, members=[("svm", LinearSVC())]).fit(X, y)
    with pytest.raises(ValueError, match=r"list of \(name, estimator\) tuples"):
        MultimodalStackingClassifier(modalities, members=[LogisticRegression()]).fit(X, y)
    with pytest.raises(ValueError, match="one class"):
        MultimodalStackingClassifier(modalities).fit(X, np.zeros(len(X)))


def test_default_members_follow_the_modalities(tiny_text_model):
    image_only = default_stacking_members(_modalities(tiny_text_model)[:1])
    assert [name for name, _ in image_only] == ["image_logreg", "image_layers", "concat_mlp"]
    without_layers = default_stacking_members(_modalities(tiny_text_model)[:1], intermediate_layers=False)
    assert [name for name, _ in without_layers] == ["image_logreg", "concat_mlp"]
    members = dict(default_stacking_members(_modalities(tiny_text_model), random_state=3))
    assert members["concat_mlp"].named_steps["clf"].random_state == 3
    assert members["gated_logreg"].named_steps["fuse"].method == "gated"
    assert members["text_ngrams"].named_steps["select"].transformers[0][2] == "text"


def test_layers_members_read_encoders_only_and_a_backbone_they_cannot_read_leaves_the_stack(tiny_text_model, data):
    X, y = data
    X = X.assign(price=np.arange(len(X), dtype=float))
    modalities = [("image", ImageEncoder(model="timm:test_vit", weights=None, device=DEVICE), "image"),
                  ("text", TextEncoder(tiny_text_model, device=DEVICE), "text"),
                  ("price", TabularEncoder(), ["price"])]
    names = [name for name, _ in default_stacking_members(modalities)]
    assert "image_layers" in names and "text_layers" in names and "price_layers" not in names
    with pytest.warns(UserWarning, match="the stack goes on without member 'image_layers'"):
        stack = MultimodalStackingClassifier(modalities, cv=3, random_state=0).fit(X, y)
    assert "image_layers" not in stack.named_members_ and "text_layers" in stack.named_members_
    uncached = [(modalities[0][0], clone(modalities[0][1]).set_params(cache=None), "image"), *modalities[1:]]
    with pytest.warns(UserWarning, match="the stack goes on without member 'image_layers'"):  # found uncached too
        MultimodalStackingClassifier(uncached, cv=3, random_state=0).fit(X, y)
    given = [pair for pair in default_stacking_members(modalities) if pair[0] in ("image_layers", "text_logreg")]
    with pytest.raises(TrunkSplitError):  # a member the user named is not dropped
        MultimodalStackingClassifier(modalities, members=given, cv=3).fit(X, y)


def test_a_layers_members_depths_set_on_the_stack_reach_its_fold_models(tiny_text_model, data):
    # The documented best MVSA configuration reads mpnet's middle layers this way (docs/user_guide.md).
    X, y = data
    modalities = _modalities(tiny_text_model)
    given = [pair for pair in default_stacking_members(modalities) if pair[0] in ("image_layers", "text_logreg")]
    stack = MultimodalStackingClassifier(modalities, members=given, cv=3, random_state=0)
    assert stack.get_params()["image_layers__estimator__select__layers__depths"] == "auto"
    stack.set_params(image_layers__estimator__select__layers__depths=(0,)).fit(X, y)
    auto_member = [pair for pair in default_stacking_members(modalities) if pair[0] == "image_layers"]
    default = MultimodalStackingClassifier(modalities, members=auto_member, cv=3, random_state=0).fit(X, y)

    def read_depths(fitted):
        return [fold.estimator_.named_steps["select"].named_transformers_["layers"].depths_
                for fold in fitted.named_members_.image_layers.estimators_]

    auto = read_depths(default)
    assert read_depths(stack) == [(0,)] * 3 and auto == [auto[0]] * 3 and auto[0] != (0,)


def test_two_encoders_of_one_text_column_share_its_ngrams_member(tiny_text_model):
    image, text = _modalities(tiny_text_model)
    larger = ("large_text", clone(text[1]), "text")
    names = [name for name, _ in default_stacking_members([image, text, larger])]
    assert names.count("text_ngrams") == 1 and "large_text_ngrams" not in names
    assert {"text_logreg", "large_text_logreg"} <= set(names)


def test_the_sentiment_lexicon_member_is_optional(tiny_text_model):
    try:
        import vaderSentiment  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install vaderSentiment"):
            default_stacking_members(_modalities(tiny_text_model), sentiment_lexicon=True)
        return
    names = [name for name, _ in default_stacking_members(_modalities(tiny_text_model), sentiment_lexicon=True)]
    assert names[-1] == "text_sentiment"
    X, y = make_multimodal_classification(n_samples=30, random_state=0)
    assert text_sentiment_member("text").fit(X, y).predict_proba(X).shape == (30, 3)


def test_the_trained_network_member_is_opt_in_and_stacks(tiny_text_model, data):
    modalities = _modalities(tiny_text_model)
    assert "network" not in dict(default_stacking_members(modalities))
    members = default_stacking_members(modalities, random_state=3, trained_network=True)
    network = dict(members)["network"]
    assert isinstance(network, MultimodalNetClassifier) and network.random_state == 3
    assert all(given[1] is not cloned[1] for given, cloned in zip(modalities, network.modalities))
    # A table's numbers are left to the other members: the network reads the image and the text.
    with_price = default_stacking_members(modalities + [("price", TabularEncoder(), ["price"])], trained_network=True)
    assert [name for name, _, _ in dict(with_price)["network"].modalities] == ["image", "text"]
    with pytest.raises(ValueError, match="at least one modality that is an ImageEncoder or a TextEncoder"):
        default_stacking_members([("price", TabularEncoder(), ["price"])], trained_network=True)
    with pytest.raises(ValueError, match="'modalities' parameter of network_can_read must be"):
        network_can_read(("image", ImageEncoder(), "image"))  # one triple, not a list of them
    X, y = data
    network.set_params(max_epochs=2, device=DEVICE)  # the mechanics, not the network's score
    stack = MultimodalStackingClassifier(modalities, members=[(name, member) for name, member in members
                                                              if name in ("text_logreg", "network")],
                                         cv=2, random_state=0).fit(X, y)
    assert list(stack.member_scores_) == ["text_logreg", "network"]
    assert stack.predict_proba(X).shape == (len(X), 3)


def test_given_members_are_seeded_by_the_stack_as_the_auto_ones_are(tiny_text_model, data):
    """``members=default_stacking_members(modalities)`` under random_state=0 fits as ``members="auto"`` does."""
    X, y = data
    modalities = _modalities(tiny_text_model)
    given = [(name, member) for name, member in default_stacking_members(modalities)
             if name in ("text_logreg", "concat_mlp")]
    assert given[1][1].get_params()["clf__random_state"] is None
    auto = [(name, member) for name, member in default_stacking_members(modalities, random_state=0)
            if name in ("text_logreg", "concat_mlp")]
    fits = [MultimodalStackingClassifier(modalities, members=members, cv=2, random_state=0).fit(X, y)
            for members in (given, given, auto)]
    np.testing.assert_array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))
    np.testing.assert_array_equal(fits[0].predict_proba(X), fits[2].predict_proba(X))
    assert fits[0].named_members_["concat_mlp"].estimators_[0].get_params()["clf__random_state"] == 0
    assert given[1][1].get_params()["clf__random_state"] is None  # the user's member is left as it was
    seeded = [("concat_mlp", clone(given[1][1]).set_params(clf__random_state=5))]
    kept = MultimodalStackingClassifier(modalities, members=seeded, cv=2, random_state=0).fit(X, y)
    assert kept.named_members_["concat_mlp"].estimators_[0].get_params()["clf__random_state"] == 5  # given: kept


def test_the_text_ngrams_member_fits_a_column_of_one_word_names():
    # Every word unique (names of things): words kept from their first occurrence, so terms remain.
    rng = np.random.default_rng(0)
    names = ["".join(rng.choice(list("abcdefghij"), 6)) for _ in range(40)]
    X, y = pd.DataFrame({"name": names}), np.arange(40) % 2
    assert text_ngrams_member("name").fit(X, y).predict_proba(X).shape == (40, 2)


def test_rows_missing_a_modality_are_stacked_from_the_others(tiny_text_model, data):
    X, y = data
    X = X.copy()
    X.loc[X.index[:10], "image"] = None
    X.loc[X.index[10:20], "text"] = None
    stack = MultimodalStackingClassifier(_modalities(tiny_text_model), cv=3, random_state=0).fit(X, y)
    image_member = stack.named_members_["image_logreg"]
    shares = np.bincount(y) / len(y)
    np.testing.assert_allclose(image_member.predict_proba(X[:10]), np.tile(shares, (10, 1)))  # no image: no evidence
    assert not np.allclose(image_member.predict_proba(X[20:30]), shares)
    probabilities = stack.predict_proba(X)
    assert np.isfinite(probabilities).all() and stack.score(X, y) > 0.6


def test_a_present_rows_member_passes_the_api_checks_and_maps_classes_it_never_saw(tmp_path):
    from sklearn.compose import make_column_transformer
    from sklearn.preprocessing import StandardScaler

    from skmm.estimators import PresentRowsClassifier

    member = PresentRowsClassifier(Pipeline([("select", make_column_transformer((StandardScaler(), ["x"]))),
                                             ("clf", LogisticRegression())]), "x")
    for check in API_CHECKS:
        check(type(member).__name__, member)
    X = pd.DataFrame({"x": [0.0, 0.1, 5.0, 5.1, None, None]})
    y = np.array(["a", "a", "b", "b", "c", "c"])  # class c only where x is missing
    probabilities = member.fit(X, y).predict_proba(X)
    np.testing.assert_allclose(probabilities[4], [1 / 3] * 3)
    assert probabilities[:4, 2].max() == 0 and list(member.predict(X[:4])) == ["a", "a", "b", "b"]
    persistence.dump(member, tmp_path / "member.skops")
    assert persistence.load(tmp_path / "member.skops").predict(X).tolist() == member.predict(X).tolist()
