"""Numbers and categories as a modality (TabularEncoder), and ModalityFusion's errors naming branch, column and row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmm import ImageEncoder, ModalityFusion, TabularEncoder, TextEncoder
from skmm.datasets import make_multimodal_classification


@parametrize_with_checks([TabularEncoder()])
def test_scikit_learn_api_checks_at_the_defaults(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def table():
    X, y = make_multimodal_classification(n_samples=120, image_size=32, random_state=0)
    rng = np.random.default_rng(0)
    X["price"] = rng.normal(10, 3, len(X)) + np.asarray(y == y[0], dtype=float)  # weak but real
    X["brand"] = rng.choice(["acme", "globex", "initech"], len(X))
    X.loc[[3, 7], "price"] = np.nan
    X.loc[[5], "brand"] = None
    return X, y


def _fusion(tiny_image_params, tiny_text_params, tabular, **params):
    return ModalityFusion([("image", ImageEncoder(**tiny_image_params), "image"),
                           ("text", TextEncoder(**tiny_text_params), "text"),
                           ("table", tabular, ["price", "brand"])], **params)


def test_numbers_and_categories_are_imputed_scaled_and_one_hot_encoded(table):
    X, _ = table
    encoder = TabularEncoder().fit(X[["price", "brand"]])
    assert encoder.numeric_ == ["price"] and encoder.categorical_ == ["brand"]
    names = encoder.get_feature_names_out().tolist()
    assert names == ["price", "missingindicator_price", "brand_acme", "brand_globex", "brand_initech",
                     "brand_missing"]
    out = encoder.transform(X[["price", "brand"]])
    assert np.isfinite(out).all()
    assert out[[3, 7], 1].tolist() == [1, 1] and out[:, 1].sum() == 2  # the imputed rows are marked
    np.testing.assert_allclose(out[:, 0].mean(), 0, atol=1e-6)
    assert out[5, names.index("brand_missing")] == 1
    unseen = pd.DataFrame({"price": [1.0], "brand": ["hooli"]})  # a brand first seen after fit: no error
    assert encoder.transform(unseen)[0, 2:].sum() == 0


def test_columns_can_be_named_and_target_encoded(table):
    X, y = table
    encoder = TabularEncoder(numeric=[], categorical=["price", "brand"], encoding="target").fit(X[["price", "brand"]], y)
    assert encoder.numeric_ == [] and encoder.categorical_ == ["price", "brand"]
    with pytest.raises(ValueError, match="fit needs y"):
        TabularEncoder(encoding="target").fit(X[["brand"]])
    with pytest.raises(ValueError, match=r"\['size'\] are not in X"):
        TabularEncoder(numeric=["size"]).fit(X[["price"]])


def test_a_tabular_branch_beside_images_and_texts(table, tiny_image_params, tiny_text_params):
    X, y = table
    for method in ("concat", "average", "weighted", "gated"):
        fusion = _fusion(tiny_image_params, tiny_text_params, TabularEncoder(), method=method)
        out = fusion.fit_transform(X, y)
        assert np.isfinite(out).all() and len(out) == len(X)
        assert set(fusion.modality_weights_) == {"image", "text", "table"}
    names = _fusion(tiny_image_params, tiny_text_params, TabularEncoder()).fit(X, y).get_feature_names_out()
    assert "table__brand_acme" in names and "table__missingindicator_price" in names
    restored = clone(fusion)
    assert restored.get_params()["table__max_categories"] == 20


def test_a_nan_in_a_branch_names_the_modality_the_column_and_the_row(table, tiny_image_params, tiny_text_params):
    X, y = table
    X = X.copy()
    X.index = [f"post{i}" for i in range(len(X))]
    X["weight"] = 1.0  # the modality is there in every row; its price is missing in two
    fusion = ModalityFusion([("image", ImageEncoder(**tiny_image_params), "image"),
                             ("numbers", StandardScaler(), ["price", "weight"])])
    with pytest.raises(ValueError, match=r"modality 'numbers' \(column \['price', 'weight'\]\).*2 row\(s\) "
                                         r"\(row 'post3', row 'post7'\).*TabularEncoder"):
        fusion.fit(X, y)
    alone = ModalityFusion([("image", ImageEncoder(**tiny_image_params), "image"),
                            ("price", StandardScaler(), ["price"])]).fit(X, y)  # all its cells missing: absent
    assert alone.indicator_


def test_a_transformers_own_error_names_its_modality(table, tiny_image_params):
    X, y = table
    fusion = ModalityFusion([("image", ImageEncoder(**tiny_image_params), "image"),
                             ("price", StandardScaler(), "price")])  # one column, as a string: 1-D
    with pytest.raises(ValueError, match=r"modality 'price' \(column 'price'\): .*reads a list of columns"):
        fusion.fit(X, y)


def test_cca_alignment_is_for_two_modalities(table, tiny_image_params, tiny_text_params):
    X, y = table
    fusion = _fusion(tiny_image_params, tiny_text_params, TabularEncoder(), method="average", alignment="cca")
    with pytest.raises(ValueError, match=r"alignment='cca' aligns two modalities, and this fusion has 3"):
        fusion.fit(X, y)
    unsupervised = _fusion(tiny_image_params, tiny_text_params, TabularEncoder(), method="average").fit(X)
    assert unsupervised.projections_  # "auto" without y and three modalities: each its own PCA, as documented


def test_a_row_without_any_tabular_value_is_missing_the_modality(table, tiny_image_params, tiny_text_params):
    X, y = table
    X = X.copy()
    X.loc[9, "price"], X.loc[9, "brand"] = np.nan, None
    fusion = _fusion(tiny_image_params, tiny_text_params, TabularEncoder())
    out = fusion.fit_transform(X, y)
    names = fusion.get_feature_names_out().tolist()
    assert fusion.indicator_ and out[9, names.index("table__present")] == 0
    assert out[3, names.index("table__present")] == 1  # one value missing: imputed, the modality is there


def test_a_value_missing_only_after_fit_is_imputed(table):
    X, _ = table
    complete = X[["price", "brand"]].dropna().reset_index(drop=True)
    encoder = TabularEncoder().fit(complete)  # no missing price in fit: no missing-price flag
    assert encoder.get_feature_names_out().tolist()[:2] == ["price", "brand_acme"]
    later = pd.DataFrame({"price": [np.nan, 12.0], "brand": ["acme", None]})
    out = encoder.transform(later)  # a production row with a hole: imputed with fit's median, not an error
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0, 0], encoder.transform(complete.assign(price=complete["price"].median()))[0, 0])


def test_a_pipeline_with_a_tabular_branch_saves_and_loads_with_skops(table, tiny_image_params, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from skmm import persistence

    X, y = table
    model = make_pipeline(ModalityFusion([("image", ImageEncoder(**tiny_image_params), "image"),
                                          ("table", TabularEncoder(), ["price", "brand"])]),
                          LogisticRegression(max_iter=1000)).fit(X, y)
    persistence.dump(model, tmp_path / "model.skops")
    loaded = persistence.load(tmp_path / "model.skops")  # skmm's own classes need no trusted=[...]
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("bad", [np.inf, "n/a"])
def test_a_value_that_is_not_a_finite_number_names_its_column_and_row(table, bad):
    X, _ = table
    encoder = TabularEncoder().fit(X[["price", "brand"]])
    later = X[["price", "brand"]].head(4).astype({"price": object})
    later.loc[2, "price"] = bad
    with pytest.raises(ValueError, match=rf"numeric column 'price' has 1 value\(s\) .*\(row 2: {bad!r}\)"):
        encoder.transform(later)
    with pytest.raises(ValueError, match=r"numeric column 'price'.*row 2"):
        TabularEncoder(numeric=["price"]).fit(later)
