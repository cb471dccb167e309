"""ModalityFusion, make_fusion and late fusion: methods, grid search, missing modalities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from skmm import ImageEncoder, ModalityFusion, TextEncoder, TorchMLPClassifier, make_fusion, make_late_fusion
from skmm.datasets import make_multimodal_classification

from .conftest import ATOL, DEVICE

CV = StratifiedKFold(3, shuffle=True, random_state=0)


@pytest.fixture(scope="module")
def data():
    return make_multimodal_classification(n_samples=240, image_size=32, random_state=0)


@pytest.fixture
def encoders(tiny_image_params, tiny_text_params):
    return lambda: (ImageEncoder(**tiny_image_params), TextEncoder(**tiny_text_params))


def _logreg():
    return LogisticRegression(C=10, max_iter=2000)


def _score(fusion, data, clf=None):
    X, y = data
    return cross_val_score(Pipeline([("fuse", fusion), ("clf", clf or _logreg())]), X, y, cv=CV).mean()


# The estimators as a user first writes them: default parameters (the device pinned for the suite).
DEFAULT_CLASSIFIERS = {"LogisticRegression()": LogisticRegression,
                       "TorchMLPClassifier()": lambda: TorchMLPClassifier(device=DEVICE, random_state=0)}


@pytest.fixture(scope="module")
def single_scores(tiny_text_model, data):
    from .conftest import TINY_IMAGE

    scores = {}
    for name, clf in DEFAULT_CLASSIFIERS.items():
        image, text = ImageEncoder(**TINY_IMAGE), TextEncoder(model=tiny_text_model, device=DEVICE)
        scores[name] = {"image": _score(make_fusion((image, "image")), data, clf()),
                        "text": _score(make_fusion((text, "text")), data, clf())}
    return scores


# The generated classes show in the image only, in the text only, or in both: a fusion that uses both must do
# clearly better than either alone, with every method and the downstream estimators at their defaults.
@pytest.mark.parametrize("classifier", list(DEFAULT_CLASSIFIERS))
@pytest.mark.parametrize("method", ["concat", "average", "weighted", "gated"])
def test_every_fusion_method_beats_both_modalities_with_default_estimators(method, classifier, encoders, data,
                                                                           single_scores):
    image, text = encoders()
    fused = _score(make_fusion((image, "image"), (text, "text"), method=method), data,
                   DEFAULT_CLASSIFIERS[classifier]())
    assert fused >= max(single_scores[classifier].values()) + 0.05, (fused, single_scores[classifier])


def test_supervised_alignment_beats_the_unsupervised_ones(encoders, data):
    image, text = encoders()
    scores = {alignment: _score(make_fusion((image, "image"), (text, "text"), method="average",
                                            alignment=alignment), data, LogisticRegression())
              for alignment in ("supervised", "cca", "pca")}
    assert scores["supervised"] > max(scores["cca"], scores["pca"]) + 0.02, scores


def test_supervised_alignment_is_cross_fitted_so_no_label_leaks_into_training_features(encoders, data):
    # Labels unrelated to the inputs: a downstream model must not be able to fit them from the training
    # features. (Leave-one-out evidence, tried first, let LogisticRegression fit such labels perfectly: a
    # row's own label pushes its leave-one-out prediction away from it.)
    image, text = encoders()
    X, _ = data
    noise_labels = np.random.default_rng(0).integers(0, 3, len(X))
    fusion = make_fusion((image, "image"), (text, "text"), method="average")
    cross_fitted = fusion.fit_transform(X, noise_labels)
    assert LogisticRegression().fit(cross_fitted, noise_labels).score(cross_fitted, noise_labels) < 0.45
    assert not np.allclose(cross_fitted, fusion.transform(X))  # transform uses the fit on every row
    assert cross_val_score(Pipeline([("fuse", fusion), ("clf", LogisticRegression())]), X, noise_labels,
                           cv=CV).mean() < 0.45


def test_fused_outputs_are_standardised_and_blocks_centred_at_unit_spread(encoders, data):
    image, text = encoders()
    X, y = data
    for method in ("average", "weighted", "gated"):
        out = make_fusion((image, "image"), (text, "text"), method=method).fit_transform(X, y)
        assert out.shape == (len(X), 3)  # supervised: one column per class
        np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-4)
    concat = make_fusion((image, "image"), (text, "text"))
    out = concat.fit_transform(X)
    for block in (out[:, :256], out[:, 256:]):
        np.testing.assert_allclose(block.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(np.sqrt((block ** 2).sum(axis=1).mean()), 1, atol=1e-4)


def test_weighted_without_weights_learns_them_and_a_noise_modality_gets_little(encoders, data):
    from sklearn.preprocessing import FunctionTransformer

    image, text = encoders()
    X, y = data
    noisy = X.assign(noise=list(np.random.default_rng(0).normal(size=(len(X), 16))))
    fusion = ModalityFusion([("image", image, "image"), ("text", text, "text"),
                             ("noise", FunctionTransformer(np.vstack), "noise")], method="weighted").fit(noisy, y)
    assert fusion.weights_.sum() == pytest.approx(1.0)
    assert fusion.weights_[2] < 0.1 < min(fusion.weights_[:2]), fusion.weights_
    with pytest.raises(ValueError, match="weighted' without weights learns them from the target: fit needs y"):
        make_fusion((image, "image"), (text, "text"), method="weighted").fit(X)


def test_a_row_with_no_modality_at_all_is_an_error_naming_it(encoders, data, embedded_items):
    image, text = encoders()
    X, y = data
    holey = X.iloc[:30].copy()
    holey.index = [f"post{i}" for i in range(30)]
    holey.loc["post4", ["image", "text"]] = None
    for method in ("concat", "average"):
        with pytest.raises(ValueError, match=r"1 row\(s\) have no modality at all \(row 'post4'\)"):
            make_fusion((image, "image"), (text, "text"), method=method).fit(holey, y[:30])
    assert embedded_items == []  # refused before any encoding
    fitted = make_fusion((image, "image"), (text, "text")).fit(X.iloc[:30], y[:30])
    with pytest.raises(ValueError, match="row 'post4'"):
        fitted.transform(holey)


def test_grid_search_over_fusion_and_final_estimator_embeds_each_input_once(encoders, data, embedded_items):
    embedded = embedded_items
    image, text = encoders()
    X, y = data
    pipe = Pipeline([("fuse", ModalityFusion([("image", image, "image"), ("text", text, "text")])),
                     ("clf", _logreg())])
    search = GridSearchCV(pipe, {
        "fuse__method": ["average", "weighted", "concat"],
        "clf": [_logreg(), TorchMLPClassifier(hidden_layer_sizes=(32,), max_epochs=30, device=DEVICE,
                                              random_state=0)],
    }, cv=CV).fit(X, y)
    assert len(search.cv_results_["params"]) == 6
    assert search.best_score_ > 0.8
    # 6 candidates x 3 folds + the refit = 19 fits, yet each distinct image and text went through a
    # model once (identical texts share one embedding: the cache keys by content).
    distinct_images = {image.tobytes() for image in X["image"]}
    assert len(embedded) == len(distinct_images) + X["text"].nunique()


@pytest.mark.parametrize("alignment, fitted_class", [("cca", "CCAAlignment"), ("pca", "PCAProjection")])
def test_a_projection_already_fitted_on_the_same_blocks_is_reused(alignment, fitted_class, encoders, data,
                                                                   monkeypatch):
    # GridSearchCV over fuse__method fits average and weighted fusion of a fold on the same blocks.
    from skmm import _alignment, clear_cache

    clear_cache("memory")
    calls = []
    original = getattr(_alignment, fitted_class).fit

    def counting_fit(self, *arrays):
        calls.append(len(arrays[0]))
        return original(self, *arrays)

    monkeypatch.setattr(getattr(_alignment, fitted_class), "fit", counting_fit)
    X, y = data
    image, text = encoders()
    average = make_fusion((image, "image"), (text, "text"), method="average", alignment=alignment,
                          n_components=8)  # the unsupervised alignments (the supervised one is memoised alike)
    first = average.fit_transform(X.iloc[:200], y[:200])
    n_fits = len(calls)
    assert n_fits >= 1
    weighted = clone(average).set_params(method="weighted", weights=[1, 1])
    np.testing.assert_allclose(weighted.fit_transform(X.iloc[:200], y[:200]), first, rtol=1e-5, atol=1e-6)
    assert len(calls) == n_fits  # reused, not refitted
    projections = (weighted.alignment_, average.alignment_) if alignment == "cca" else (
        weighted.projections_["image"], average.projections_["image"])
    assert projections[0] is not projections[1]  # a copy: no shared fitted state
    other = clone(average).fit_transform(X.iloc[:180], y[:180])  # other rows: fitted again
    assert len(calls) == 2 * n_fits and calls[-1] == 180
    assert other.shape == (180, 8)
    clear_cache("memory")
    clone(average).fit(X.iloc[:200], y[:200])
    assert len(calls) == 3 * n_fits  # clear_cache forgets the fits too


def test_html_display_shows_a_branch_per_modality(encoders):
    image, text = encoders()
    html = Pipeline([("fuse", make_fusion((image, "photo"), (text, "caption"), method="average")),
                     ("clf", _logreg())])._repr_html_()
    for shown in ("photo", "caption", "ImageEncoder", "TextEncoder", "LogisticRegression"):
        assert shown in html, shown


def test_nested_parameters_reach_the_encoders(encoders):
    image, text = encoders()
    pipe = Pipeline([("fuse", make_fusion((image, "image"), (text, "text"))), ("clf", _logreg())])
    params = pipe.get_params()
    for key in ("fuse__method", "fuse__weights", "fuse__image__batch_size", "fuse__text__normalize"):
        assert key in params
    pipe.set_params(fuse__image__batch_size=7, fuse__method="weighted", fuse__weights=[1, 2])
    assert pipe.named_steps["fuse"].transformers[0][1].batch_size == 7
    assert pipe.named_steps["fuse"].method == "weighted"


def test_feature_names_and_pandas_output(encoders, data):
    image, text = encoders()
    X, y = data
    concat = make_fusion((image, "image"), (text, "text")).set_output(transform="pandas")
    out = concat.fit_transform(X.iloc[:20])
    assert isinstance(out, pd.DataFrame) and out.shape == (20, 256 + 128)
    assert out.columns[0] == "image__imageencoder0" and out.columns[-1] == "text__textencoder127"
    average = make_fusion((image, "image"), (text, "text"), method="average", n_components=16).fit(X.iloc[:50])
    assert average.get_feature_names_out().tolist() == [f"fused{i}" for i in range(16)]  # no y: CCA
    assert average.transform(X.iloc[:5]).shape == (5, 16)


def test_any_sklearn_transformer_can_be_an_encoder(tiny_image_params, data):
    X, y = data
    fusion = ModalityFusion([("image", ImageEncoder(**tiny_image_params), "image"), ("text", TfidfVectorizer(), "text")])
    assert _score(fusion, data) > 0.85
    assert "text__fire" in fusion.fit(X, y).get_feature_names_out()
    svd = make_pipeline(TfidfVectorizer(), TruncatedSVD(10, random_state=0))
    names = ModalityFusion([("text", svd, "text")]).fit(X, y).get_feature_names_out()
    assert names[-1] == "text__truncatedsvd9"


def test_input_validation(encoders, data):
    image, text = encoders()
    X, y = data
    fusion = make_fusion((image, "image"), (text, "caption"))
    with pytest.raises(ValueError, match=r"'caption'.*\['caption'\]"):
        fusion.fit(X)
    with pytest.raises(ValueError, match="different lengths"):
        make_fusion((text, "text")).fit({"text": ["a", "b"], "other": ["c"]})
    with pytest.raises(ValueError, match="method"):
        make_fusion((text, "text"), method="max").fit(X)
    with pytest.raises(ValueError, match="weights"):
        make_fusion((image, "image"), (text, "text"), method="weighted", weights={"audio": 1}).fit(X)
    with pytest.raises(ValueError, match="weights"):
        make_fusion((image, "image"), (text, "text"), method="weighted", weights=[1, -1]).fit(X)
    with pytest.raises(ValueError, match="empty"):
        make_fusion((text, "text")).fit(X.iloc[:0])
    fitted = make_fusion((text, "text")).fit({"text": ["a", "b"]})  # a dict of columns works too
    assert fitted.transform({"text": ["c"]}).shape == (1, 128)


def test_weighted_fusion_follows_the_weights(encoders, data):
    image, text = encoders()
    X, _ = data
    only_text = make_fusion((image, "image"), (text, "text"), method="weighted", weights={"image": 0, "text": 1},
                            alignment="pca", n_components=16)
    text_alone = make_fusion((text, "text"), method="average", n_components=16)
    np.testing.assert_allclose(only_text.fit_transform(X.iloc[:40]), text_alone.fit_transform(X.iloc[:40]),
                               atol=ATOL)


def _text_alone_in_common_space(fusion, texts):
    """What a fitted average / gated fusion makes of texts alone: encoded, scaled, projected, standardised."""
    text = fusion.named_transformers_["text"]
    block = fusion._scale(text.transform(texts), text)
    return fusion._standardize(fusion._project("text", fusion._center_and_scale("text", block)))


def test_missing_modality_average_renormalises(encoders, data):
    image, text = encoders()
    X, y = data
    for alignment in ("supervised", "cca"):
        fusion = make_fusion((image, "image"), (text, "text"), method="average", n_components=16,
                             alignment=alignment).fit(X.iloc[:60], y[:60])
        holey = X.iloc[:4].copy()
        holey.loc[holey.index[1], "image"] = None
        holey.loc[holey.index[2], "text"] = np.nan
        out = fusion.transform(holey)
        # the image is absent: the text alone
        np.testing.assert_allclose(out[1], _text_alone_in_common_space(fusion, holey["text"].iloc[[1]])[0],
                                   atol=ATOL)
        assert np.isfinite(out).all()


def test_missing_modality_concat_fills_the_training_mean_and_adds_indicators(encoders, data):
    image, text = encoders()
    X, y = data
    holey = X.copy()
    holey.loc[holey.index[::7], "image"] = None
    fusion = make_fusion((image, "image"), (text, "text"))
    out = fusion.fit_transform(holey)
    assert out.shape[1] == 256 + 128 + 2
    assert fusion.get_feature_names_out()[-2:].tolist() == ["image__present", "text__present"]
    missing_rows = np.arange(len(X)) % 7 == 0
    fill = out[~missing_rows, :256].mean(axis=0)  # the mean of the image block over the rows that had one
    np.testing.assert_allclose(out[missing_rows, :256], np.tile(fill, (missing_rows.sum(), 1)), atol=1e-5)
    assert (out[missing_rows, -2] == 0).all()
    assert (out[~missing_rows, -2] == 1).all()


def test_late_fusion_average_weighted_and_stacking(encoders, data, single_scores):
    X, y = data
    for method, extra in (("average", {}), ("weighted", {"weights": [1, 2]}), ("stacking", {"cv": 3})):
        image, text = encoders()
        late = make_late_fusion(("image", image, "image", LogisticRegression()),
                                ("text", text, "text", LogisticRegression()), method=method, **extra)
        score = cross_val_score(late, X, y, cv=CV).mean()
        singles = single_scores["LogisticRegression()"]
        assert score > max(singles.values()) + 0.05, (method, score, singles)


def test_late_and_early_fusion_grid_searched_side_by_side(encoders, data):
    X, y = data
    image, text = encoders()
    early = Pipeline([("fuse", make_fusion((image, "image"), (text, "text"))), ("clf", _logreg())])
    late = make_late_fusion(("image", image, "image", _logreg()), ("text", text, "text", _logreg()))
    search = GridSearchCV(Pipeline([("model", early)]), {"model": [early, late]}, cv=CV).fit(X, y)
    assert len(search.cv_results_["mean_test_score"]) == 2
    with pytest.raises(ValueError, match="at least two"):
        make_late_fusion(("image", image, "image", _logreg()))


def _trust_one_modality_per_row(n=600, seed=0):
    """Each row's label shows in one modality only; a flag in both blocks says which (a gate can learn it)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    image_rows = rng.random(n) < 0.5
    signal = np.where(y == 1, 1.0, -1.0)
    noise = rng.normal(size=(n, 2))
    a = np.column_stack([np.where(image_rows, signal, noise[:, 0]), image_rows, rng.normal(size=n) * 0.1])
    b = np.column_stack([np.where(image_rows, noise[:, 1], signal), image_rows, rng.normal(size=n) * 0.1])
    X = pd.DataFrame(np.hstack([a, b]), columns=["a0", "a1", "a2", "b0", "b1", "b2"])
    return X, y, image_rows


def test_gated_fusion_learns_which_modality_to_trust_per_row():
    from sklearn.preprocessing import FunctionTransformer

    X, y, image_rows = _trust_one_modality_per_row()
    columns = {"image": ["a0", "a1", "a2"], "text": ["b0", "b1", "b2"]}

    def fusion(method):
        return ModalityFusion([(name, FunctionTransformer(), cols) for name, cols in columns.items()],
                              method=method, alignment="pca", normalize=False)

    scores = {method: cross_val_score(make_pipeline(fusion(method), LogisticRegression()), X, y,
                                      cv=StratifiedKFold(3, shuffle=True, random_state=0)).mean()
              for method in ("average", "gated", "concat")}
    assert scores["gated"] > scores["average"] + 0.1, scores  # concat works too: a transformer need not name features
    fitted = fusion("gated").fit(X, y)
    present = [np.ones(len(X), bool)] * 2
    space = fitted._to_common_space([fitted._center_and_scale(name, X[cols].to_numpy(np.float32))
                                     for name, cols in columns.items()], present)
    gates = fitted.gate_.weights(space, np.column_stack(present))
    np.testing.assert_allclose(gates.sum(axis=1), 1.0, atol=1e-6)
    assert gates[image_rows, 0].mean() > 0.8 and gates[~image_rows, 1].mean() > 0.8  # each row trusts its modality
    np.testing.assert_array_equal(fusion("gated").fit_transform(X, y), fitted.transform(X))  # deterministic


def test_gated_fusion_needs_y_and_handles_missing_modalities(encoders, data):
    image, text = encoders()
    X, y = data
    with pytest.raises(ValueError, match="needs y"):
        make_fusion((image, "image"), (text, "text"), method="gated").fit(X)
    fusion = make_fusion((image, "image"), (text, "text"), method="gated", n_components=16,
                         alignment="cca").fit(X.iloc[:80], y[:80])
    assert fusion.get_feature_names_out().tolist() == [f"fused{i}" for i in range(16)]
    holey = X.iloc[:3].copy()
    holey.loc[holey.index[1], "image"] = None
    out = fusion.transform(holey)
    # the gate gives the absent image nothing
    np.testing.assert_allclose(out[1], _text_alone_in_common_space(fusion, holey["text"].iloc[[1]])[0], atol=ATOL)
    search = GridSearchCV(Pipeline([("fuse", make_fusion((image, "image"), (text, "text"))), ("clf", _logreg())]),
                          {"fuse__method": ["average", "gated"]}, cv=CV).fit(X, y)
    assert set(search.cv_results_["param_fuse__method"]) == {"average", "gated"}


@pytest.mark.parametrize("method", ["average", "weighted", "gated"])
@pytest.mark.parametrize("target", ["binary", "multiclass", "continuous", "multilabel", "multioutput"])
def test_every_method_takes_every_kind_of_target(method, target):
    # A one-column target (two classes, one number) once failed in the cross-fitting: Ridge predicts it 1-D.
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(120, 4)), columns=list("abcd"))
    y = {"binary": (X.a > 0).astype(int), "multiclass": pd.cut(X.a + X.c, 3, labels=False),
         "continuous": X.a + X.c, "multilabel": np.column_stack([X.a > 0, X.c > 0]).astype(int),
         "multioutput": np.column_stack([X.a, X.c])}[target]
    fusion = ModalityFusion([("x", StandardScaler(), ["a", "b"]), ("z", StandardScaler(), ["c", "d"])], method=method)
    if method == "gated" and target == "multilabel":  # its softmax gate is trained through one head: said plainly
        with pytest.raises(ValueError, match="method='gated' learns its gate from y"):
            fusion.fit(X, y)
        return
    fused = fusion.fit_transform(X, y)
    assert fused.shape[0] == 120 and np.isfinite(fused).all()
    assert np.isfinite(fusion.transform(X)).all()
