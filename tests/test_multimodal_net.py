"""MultimodalNetClassifier / Regressor: top blocks trained with the fusion and heads, the trunk run once per item."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.utils import estimator_checks as checks

from skmm import ImageEncoder, MultimodalNetClassifier, MultimodalNetRegressor, TextEncoder, persistence
from skmm.datasets import make_multimodal_classification

from .conftest import DEVICE

# The input is a table of images and texts, not a numeric matrix, so the estimator's tags skip sklearn's
# data-driven checks (as the encoders' do); these API checks run on the defaults (only the modalities given).
API_CHECKS = [checks.check_estimator_cloneable, checks.check_estimator_repr, checks.check_no_attributes_set_in_init,
              checks.check_do_not_raise_errors_in_init_or_set_params, checks.check_mixin_order,
              checks.check_valid_tag_types, checks.check_estimator_tags_renamed,
              checks.check_parameters_default_constructible, checks.check_get_params_invariance,
              checks.check_set_params]


def _modalities(tiny_image_params, tiny_text_model):
    return [("image", ImageEncoder(**tiny_image_params), "image"), ("text", TextEncoder(tiny_text_model, device=DEVICE),
                                                                    "text")]


@pytest.fixture(scope="module")
def data():
    return make_multimodal_classification(n_samples=240, image_size=32, random_state=0)


@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("cls", [MultimodalNetClassifier, MultimodalNetRegressor])
def test_sklearn_api_checks_with_default_parameters(check, cls, tiny_image_params, tiny_text_model):
    check(cls.__name__, cls(_modalities(tiny_image_params, tiny_text_model)))


@pytest.mark.parametrize("fusion", ["concat", "average", "weighted", "gated", "attention"])
def test_every_fusion_learns_from_both_modalities(fusion, tiny_image_params, tiny_text_model, data):
    X, y = data
    net = MultimodalNetClassifier(_modalities(tiny_image_params, tiny_text_model), fusion=fusion, max_epochs=40,
                                  random_state=0, device=DEVICE).fit(X[:180], y[:180])
    assert net.score(X[180:], y[180:]) > 0.8  # either modality alone: about 0.7 on this data
    proba = net.predict_proba(X[180:])
    assert proba.shape == (60, 3) and np.allclose(proba.sum(axis=1), 1)


def test_only_the_top_blocks_and_the_heads_train(tiny_image_params, tiny_text_model, data):
    X, y = data
    modalities = _modalities(tiny_image_params, tiny_text_model)
    net = MultimodalNetClassifier(modalities, train_blocks=1, max_epochs=3, random_state=0, device=DEVICE).fit(X, y)
    image, text = (encoder for _, encoder, _ in net.modalities_)
    backbone = image.load_backbone().module
    blocks = [name for name, _ in backbone.named_children()]
    top = net.network_.branches[0].units
    # test_efficientnet: conv_stem, bn1, 5 blocks, conv_head, bn2: the last block and the head layers train
    assert len(top) == 3 and blocks[:3] == ["conv_stem", "bn1", "blocks"]
    trained = dict(top[0].named_parameters())
    pretrained = dict(backbone.blocks[-1][0].named_parameters())
    assert any(not torch.equal(trained[k].cpu(), pretrained[k].cpu()) for k in trained)  # it changed...
    assert all(not p.requires_grad for p in backbone.parameters())  # ...the loaded backbone did not
    fresh = ImageEncoder(**tiny_image_params).fit(X["image"][:1]).load_backbone().module
    assert all(torch.equal(a.cpu(), b.cpu()) for a, b in zip(backbone.state_dict().values(),
                                                             fresh.state_dict().values()))
    assert len(net.network_.branches[1].layers) == 1  # the tiny text model's one layer
    frozen = MultimodalNetClassifier(modalities, train_blocks=0, max_epochs=2, device=DEVICE).fit(X, y)
    assert sum(p.numel() for b in frozen.network_.branches for p in b.parameters()) == 0


def test_the_trunk_runs_once_per_item_in_a_grid_search(tiny_image_params, tiny_text_model, data, embedded_items):
    X, y = data
    net = MultimodalNetClassifier(_modalities(tiny_image_params, tiny_text_model), max_epochs=2, device=DEVICE)
    search = GridSearchCV(net, {"fusion": ["concat", "average"]}, cv=StratifiedKFold(3, shuffle=True,
                                                                                      random_state=0)).fit(X, y)
    assert len(search.cv_results_["params"]) == 2
    # 2 candidates x 3 folds + the refit = 7 fits, and each distinct image and text went through its trunk once
    distinct_images = {image.tobytes() for image in X["image"]}
    assert len(embedded_items) == len(distinct_images) + X["text"].nunique()


def _word_order_task(n=600, seed=0):
    """Whether "fire" comes before "ocean" among filler words: a frozen random text model loses the order."""
    rng = np.random.default_rng(seed)
    filler = ["today", "photo", "friends", "weekend", "look", "posted", "morning", "again", "great", "view", "city"]
    texts, y = [], []
    for _ in range(n):
        words, first = list(rng.choice(filler, 6)), int(rng.integers(2))
        i, j = sorted(rng.choice(7, 2, replace=False))
        words.insert(i, "fire" if first else "ocean")
        words.insert(j + 1, "ocean" if first else "fire")
        texts.append(" ".join(words))
        y.append(first)
    return pd.DataFrame({"text": texts}), np.array(y)


def test_one_trained_block_learns_what_the_frozen_trunk_cannot(tiny_text_model):
    X, y = _word_order_task()
    scores = {}
    for k in (0, 1):
        net = MultimodalNetClassifier([("text", TextEncoder(tiny_text_model, device=DEVICE), "text")], train_blocks=k,
                                      max_epochs=40, learning_rate=3e-3, backbone_learning_rate=1e-3, random_state=0,
                                      device=DEVICE)
        scores[k] = net.fit(X[:480], y[:480]).score(X[480:], y[480:])
    assert scores[1] > 0.9 and scores[0] < 0.75, scores


def test_multi_task_heads(tiny_image_params, tiny_text_model, data):
    X, y = data
    Y = np.column_stack([y, np.where(y == 0, "warm", "cold"), y * 1.5 + 0.25])
    Y = pd.DataFrame({"colour": y, "temperature": np.where(y == 0, "warm", "cold"), "value": y * 1.5 + 0.25})
    net = MultimodalNetClassifier(_modalities(tiny_image_params, tiny_text_model), max_epochs=30, random_state=0,
                                  task_weights=[1.0, 1.0, 0.5], device=DEVICE).fit(X[:180], Y[:180])
    predicted = net.predict(X[180:])
    assert predicted.shape == (60, 3)
    assert set(predicted[:, 1]) <= {"warm", "cold"}
    assert np.mean(predicted[:, 0].astype(int) == y[180:]) > 0.8
    assert np.abs(predicted[:, 2].astype(float) - Y["value"][180:]).mean() < 0.5  # a regression head
    proba = net.predict_proba(X[180:])
    assert isinstance(proba, list) and [p.shape for p in proba] == [(60, 3), (60, 2)]
    assert len(net.classes_) == 2 and list(net.classes_[1]) == ["cold", "warm"]
    assert 0 <= net.score(X[180:], Y[180:].to_numpy()) <= 1


def test_regressor(tiny_image_params, tiny_text_model, data):
    X, y = data
    target = y * 10.0 + 100
    net = MultimodalNetRegressor(_modalities(tiny_image_params, tiny_text_model), max_epochs=40, random_state=0,
                                 device=DEVICE).fit(X[:180], target[:180])
    assert net.predict(X[180:]).shape == (60,)
    assert net.score(X[180:], target[180:]) > 0.5


def test_a_classifier_refuses_continuous_targets_and_forgets_old_column_names(tiny_image_params, tiny_text_model,
                                                                               data):
    X, y = data
    net = MultimodalNetClassifier(_modalities(tiny_image_params, tiny_text_model), max_epochs=1, device=DEVICE)
    with pytest.raises(ValueError, match="Unknown label type"):
        net.fit(X, y + np.linspace(0.01, 0.5, len(y)))
    net.fit(X, y)
    assert list(net.feature_names_in_) == list(X.columns)
    unnamed = {0: X["image"].to_numpy(), 1: X["text"].to_numpy()}
    net.set_params(modalities=[("image", ImageEncoder(**tiny_image_params), 0),
                               ("text", TextEncoder(tiny_text_model, device=DEVICE), 1)]).fit(unnamed, y)
    assert not hasattr(net, "feature_names_in_")


def test_a_modality_the_network_cannot_train_is_named_before_any_work(tiny_image_params, embedded_items):
    from skmm import TabularEncoder

    X, y = make_multimodal_classification(n_samples=30, image_size=32, random_state=0)
    X["price"] = np.arange(30.0)
    for modality in (("price", TabularEncoder(), ["price"]), ("image2", ImageEncoder(**tiny_image_params), ["image"])):
        net = MultimodalNetClassifier([("image", ImageEncoder(**tiny_image_params), "image"), modality])
        with pytest.raises(ValueError, match=f"modality '{modality[0]}' is a {type(modality[1]).__name__} of "
                                             r".*must be an ImageEncoder or a TextEncoder of one column"):
            net.fit(X, y)
    assert embedded_items == []


def test_verbose_says_which_stage_trains_and_what_was_kept(tiny_image_params, tiny_text_model, capsys):
    X, y = make_multimodal_classification(n_samples=120, image_size=32, random_state=0)
    MultimodalNetClassifier(_modalities(tiny_image_params, tiny_text_model), probe_epochs=3, max_epochs=2,
                            verbose=1, device=DEVICE, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    for line in ("stage 1: the fusion and heads", "stage 2: the top blocks train", "training again on every row"):
        assert f"[MultimodalNetClassifier] {line}" in out, out
    assert "the trained blocks are kept" in out or "stage 1's network is kept" in out


def test_missing_modalities_and_a_row_with_none(tiny_image_params, tiny_text_model, data):
    X, y = data
    holey = X.copy()
    holey.loc[::5, "image"] = None
    net = MultimodalNetClassifier(_modalities(tiny_image_params, tiny_text_model), max_epochs=10, random_state=0,
                                  device=DEVICE).fit(holey, y)
    assert np.isfinite(net.predict_proba(X.assign(image=None))).all()  # text alone
    empty = X.iloc[:3].copy()
    empty.index = ["a", "b", "c"]
    empty.loc["b", ["image", "text"]] = None
    with pytest.raises(ValueError, match=r"no modality at all \(row 'b'\)"):
        net.predict(empty)


def test_saved_models_hold_only_the_trained_weights_and_load_on_a_cpu(tiny_image_params, tiny_text_model, data,
                                                                       tmp_path, monkeypatch):
    X, y = data
    net = MultimodalNetClassifier(_modalities(tiny_image_params, tiny_text_model), fusion="attention",
                                  max_epochs=3, random_state=0, device=DEVICE).fit(X, y)
    expected = net.predict_proba(X)
    persistence.dump(net, tmp_path / "net.skops")
    assert persistence.untrusted_types(tmp_path / "net.skops") == []
    np.testing.assert_allclose(persistence.load(tmp_path / "net.skops").predict_proba(X), expected, atol=1e-6)
    trained = sum(v.numel() for v in net.network_.state_dict().values())
    assert len(pickle.dumps(net)) < 4 * trained + 2_000_000  # the weights trained, not the backbones
    net.set_params(fusion="concat", train_blocks=0, fusion_width=8)  # a load rebuilds what was trained
    np.testing.assert_allclose(pickle.loads(pickle.dumps(net)).predict_proba(X), expected, atol=1e-6)
    net.device_ = "cuda"  # as if fitted on a GPU: it must load and predict here
    with pytest.warns(RuntimeWarning, match="not available"):
        restored = pickle.loads(pickle.dumps(net)) if not torch.cuda.is_available() else pytest.skip("has CUDA")
    np.testing.assert_allclose(restored.predict_proba(X), expected, atol=1e-6)


_SCRIPT = """
import sys, numpy as np
from skmm import ImageEncoder, MultimodalNetClassifier
from skmm.datasets import make_multimodal_classification
X, y = make_multimodal_classification(n_samples=60, image_size=32, random_state=0)
net = MultimodalNetClassifier([("image", ImageEncoder("timm:test_efficientnet", weights=None, device="cpu"), "image")],
                              max_epochs=3, random_state=5, device="cpu").fit(X, y)
sys.stdout.write(net.predict_proba(X).tobytes().hex())
"""


def test_the_same_random_state_gives_the_same_predictions_in_two_processes():
    runs = [subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0]) > 1000


def test_augmented_views_are_computed_once_each(tiny_image_params, data, embedded_items):
    X, y = data
    net = MultimodalNetClassifier([("image", ImageEncoder(**tiny_image_params), "image")], augment=True, n_views=3,
                                  max_epochs=3, random_state=0, device=DEVICE)
    net.fit(X, y)
    first = len(embedded_items)
    assert first == 3 * len(X)  # the original and 2 views of every (training) image
    net.fit(X, y)
    assert len(embedded_items) == first  # refitting reads every view from the cache


@pytest.mark.real_model
def test_the_frozen_network_scores_like_the_mlp_on_the_concatenated_embeddings():
    """train_blocks=0 trains the same kind of model as TorchMLPClassifier on ModalityFusion(method="concat"):
    with the default encoders and default parameters the network is not behind (a batch norm per feature, the
    earlier input treatment, cost 1 to 4 points on real tables; 20 warm-up-cosine epochs for its head, the
    earlier first stage, 3 on a 16-class table; inputs 29 times smaller than the MLP's, about 1 on that table).
    Here it is 0.5 points behind; on the real tables of benchmarks/net_parity.py within 0.5 either way."""
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import Pipeline

    from skmm import ModalityFusion, TorchMLPClassifier

    X, y = make_multimodal_classification(n_samples=400, random_state=0)

    def modalities():
        return [("image", ImageEncoder(device=DEVICE), "image"), ("text", TextEncoder(device=DEVICE), "text")]

    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    mlp = Pipeline([("fuse", ModalityFusion(modalities(), method="concat")),
                    ("clf", TorchMLPClassifier(random_state=0, device=DEVICE))])
    net = MultimodalNetClassifier(modalities(), train_blocks=0, random_state=0, device=DEVICE)
    mlp_score, net_score = (cross_val_score(model, X, y, cv=folds).mean() for model in (mlp, net))
    assert mlp_score > 0.85 and net_score >= mlp_score - 0.01, (net_score, mlp_score)


@pytest.mark.parametrize("seed", [0, 2])
def test_the_default_does_not_lose_to_the_frozen_head_where_the_trunk_is_already_ideal(tiny_text_model, seed):
    """Texts whose class word the frozen embedding already shows: training the layer can only overfit. The
    network at its defaults (train_blocks=1; 200 rows, so early_stopping="auto" chooses on a validation split
    and trains again on every row) trains the head on the frozen layer first and keeps the trained layer only
    where the validation rows say it helped."""
    X, y = make_multimodal_classification(n_samples=300, image_size=32, text_informative=1.0, image_informative=0.0,
                                          random_state=0)

    def net(**params):
        return MultimodalNetClassifier([("text", TextEncoder(tiny_text_model, device=DEVICE), "text")],
                                       random_state=seed, device=DEVICE, **params).fit(X[:200], y[:200])

    frozen, default = net(train_blocks=0), net()
    assert default.score(X[200:], y[200:]) >= frozen.score(X[200:], y[200:]) - 0.01
    assert frozen.blocks_trained_ is False and len(default.validation_loss_curve_) > 0


# -- several target columns: the score, and which columns are classes (target_type) -------------------------------
@pytest.fixture(scope="module")
def small():
    X, y = make_multimodal_classification(n_samples=48, image_size=32, random_state=0)
    return X, y


def _small_net(cls, tiny_image_params, **params):
    """A network that fits in about a second: one image modality, frozen, two epochs."""
    return cls([("image", ImageEncoder(**tiny_image_params), "image")], train_blocks=0, max_epochs=2,
               random_state=0, device=DEVICE, **params)


def test_the_score_of_several_tasks_is_the_mean_of_their_own_scores(tiny_image_params, small):
    from sklearn.metrics import accuracy_score, r2_score

    X, y = small
    Y = pd.DataFrame({"label": y, "value": y * 1.5 + 0.25})
    net = _small_net(MultimodalNetClassifier, tiny_image_params).fit(X, Y)
    predicted = net.predict(X)
    expected = np.mean([accuracy_score(y, predicted[:, 0].astype(int)),
                        r2_score(Y["value"], predicted[:, 1].astype(float))])
    assert net.score(X, Y) == pytest.approx(expected) and net.score(X, Y.to_numpy()) == pytest.approx(expected)
    weights = np.linspace(0.5, 2, len(y))
    weighted = np.mean([accuracy_score(y, predicted[:, 0].astype(int), sample_weight=weights),
                        r2_score(Y["value"], predicted[:, 1].astype(float), sample_weight=weights)])
    assert net.score(X, Y, sample_weight=weights) == pytest.approx(weighted)
    with pytest.raises(ValueError, match="y has 1 columns"):
        net.score(X, Y[["label"]])
    single = _small_net(MultimodalNetClassifier, tiny_image_params).fit(X, y)  # one task: plain accuracy
    assert single.score(X, y) == accuracy_score(y, single.predict(X))


def test_the_regressor_scores_r2_as_scikit_learn_and_the_mean_with_a_class_column(tiny_image_params, small):
    from sklearn.metrics import accuracy_score, r2_score

    X, y = small
    Y = np.column_stack([y * 10.0 + 100, y * 1.5 + 0.25])
    net = _small_net(MultimodalNetRegressor, tiny_image_params).fit(X, Y)
    assert net.score(X, Y) == pytest.approx(r2_score(Y, net.predict(X)))
    assert net.fit(X, Y[:, 0]).score(X, Y[:, 0]) == pytest.approx(r2_score(Y[:, 0], net.predict(X)))
    # target_type="classes" makes a whole-number column a class task, even in a regressor
    mixed = pd.DataFrame({"label": y.astype(float), "value": Y[:, 1]})
    net.set_params(target_type={"label": "classes"}).fit(X, mixed)
    assert [type(coder).__name__ for coder in net._targets.coders] == ["ClassTargets", "RegressionTargets"]
    predicted = net.predict(X)
    assert set(predicted[:, 0]) <= {0.0, 1.0, 2.0}
    expected = np.mean([accuracy_score(y, predicted[:, 0]), r2_score(mixed["value"], predicted[:, 1])])
    assert net.score(X, mixed) == pytest.approx(expected)


def test_target_type_makes_a_whole_number_column_numeric(tiny_image_params, small):
    X, y = small
    counts = (y * 2 + np.arange(len(y)) % 3).astype(float)  # whole numbers: classes unless told
    Y = pd.DataFrame({"label": y, "count": counts})
    net = _small_net(MultimodalNetClassifier, tiny_image_params).fit(X, Y)
    assert [type(coder).__name__ for coder in net._targets.coders] == ["ClassTargets", "ClassTargets"]
    # by column name, by position (a y without names), as a list
    for target_type, target in (({"count": "continuous"}, Y), ({1: "continuous"}, Y.to_numpy()),
                                (["auto", "continuous"], Y)):
        net.set_params(target_type=target_type).fit(X, target)
        assert [type(coder).__name__ for coder in net._targets.coders] == ["ClassTargets", "RegressionTargets"]
        values = net.predict(X)[:, 1].astype(float)
        assert not np.allclose(values, np.round(values))  # a regression head's values, not count classes
        assert len(net.classes_) == 1 and list(net.classes_[0]) == [0, 1, 2]


@pytest.mark.parametrize("target_type, error", [
    ("numbers", "target_type"),  # the parameter's validation
    (("auto", "continuous"), "target_type"),
    (["auto"], "one type per target column"),
    (["auto", "bogus"], "must be 'auto', 'classes' or 'continuous'"),
    ({"counts": "continuous"}, "keys"),
    ({"label": "continuous", "count": "continuous"}, "needs at least one class target column"),
])
def test_invalid_target_types_are_refused(target_type, error, tiny_image_params, small):
    X, y = small
    Y = pd.DataFrame({"label": y, "count": y * 2.0})
    with pytest.raises(ValueError, match=error):
        _small_net(MultimodalNetClassifier, tiny_image_params, target_type=target_type).fit(X, Y)


@pytest.mark.parametrize("cls", [MultimodalNetClassifier, MultimodalNetRegressor])
def test_target_type_is_a_parameter_and_old_pickles_without_it_load(cls, tiny_image_params, small):
    from sklearn.base import clone

    X, y = small
    net = _small_net(cls, tiny_image_params)
    assert net.get_params()["target_type"] == "auto"
    assert clone(net.set_params(target_type={"label": "classes"})).get_params()["target_type"] == {"label": "classes"}
    net.set_params(target_type="auto").fit(X, y)
    del net.target_type  # as networks saved before the parameter existed
    loaded = pickle.loads(pickle.dumps(net))
    assert loaded.get_params()["target_type"] == "auto"
    np.testing.assert_allclose(loaded.predict(X), net.predict(X))


def test_a_soft_vote_of_networks_of_different_seeds_reads_the_table(tiny_image_params, tiny_text_model, data):
    # The user guide's recipe: VotingClassifier passes the DataFrame through and label-encodes y for its members.
    from sklearn.ensemble import VotingClassifier

    X, y = data
    labels = np.array(["neg", "neu", "pos"])[y]
    nets = [(f"net{seed}", MultimodalNetClassifier(_modalities(tiny_image_params, tiny_text_model), train_blocks=0,
                                                   random_state=seed, device=DEVICE)) for seed in range(2)]
    vote = VotingClassifier(nets, voting="soft").fit(X[:180], labels[:180])
    members = [net.predict_proba(X[180:]) for net in vote.estimators_]
    assert not np.allclose(*members)  # two seeds, two networks
    np.testing.assert_allclose(vote.predict_proba(X[180:]), np.mean(members, axis=0))
    assert set(vote.predict(X[180:])) <= set(labels) and vote.score(X[180:], labels[180:]) > 0.6


def test_an_mpnet_top_gets_its_encoders_position_bias_and_learns_word_order(tiny_mpnet_model):
    # MPNet's encoder adds a relative position bias to every layer's attention: its layers run one by one
    # without it do not reproduce the model, and the split was refused.
    from sentence_transformers import SentenceTransformer

    from skmm.encoders.trunks import PositionBias, check_text_split, run_text_layers, text_layers

    st = SentenceTransformer(tiny_mpnet_model, device="cpu")
    auto_model, layers = st[0].auto_model, text_layers(st[0].auto_model)
    features = dict(st.tokenizer(["fire city photo", "a longer text of friends in the city"], padding=True,
                                 return_tensors="pt"))
    with torch.inference_mode():
        states = auto_model(**features, output_hidden_states=True).hidden_states
        biased = run_text_layers(layers, states[0], features["attention_mask"], PositionBias.of(auto_model, layers))
        unbiased = run_text_layers(layers, states[0], features["attention_mask"])
    keep = features["attention_mask"][..., None]
    torch.testing.assert_close(biased * keep, states[-1] * keep, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(unbiased * keep, states[-1] * keep, atol=1e-3)
    assert check_text_split(auto_model, features) is layers
    X, y = _word_order_task()
    net = MultimodalNetClassifier([("text", TextEncoder(tiny_mpnet_model, device=DEVICE), "text")], train_blocks=1,
                                  max_epochs=40, learning_rate=3e-3, backbone_learning_rate=1e-3, random_state=0,
                                  device=DEVICE)
    assert net.fit(X[:480], y[:480]).score(X[480:], y[480:]) > 0.9
    assert net.blocks_trained_
    # saved networks hold the trained weights and rebuild the rest, the bias included
    np.testing.assert_allclose(pickle.loads(pickle.dumps(net)).predict_proba(X[480:]), net.predict_proba(X[480:]),
                               atol=1e-6)


def test_layer_decay_gives_each_trained_block_a_rate_by_the_blocks_above_it(tiny_image_params, tiny_mpnet_model,
                                                                            data, monkeypatch):
    import skmm.estimators._torch_base as torch_base

    rates = []  # per optimizer: {parameter id: learning rate}
    original = torch_base.make_optimizer

    def recording(name, parameters, **kwargs):
        optimizer = original(name, parameters, **kwargs)
        rates.append({id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]})
        return optimizer

    monkeypatch.setattr(torch_base, "make_optimizer", recording)
    X, y = data
    net = MultimodalNetClassifier([("image", ImageEncoder(**tiny_image_params), "image"),
                                   ("text", TextEncoder(tiny_mpnet_model, device=DEVICE), "text")],
                                  train_blocks=2, layer_decay=0.5, backbone_learning_rate=1e-3, max_epochs=1,
                                  probe_epochs=2, early_stopping=False, random_state=0, device=DEVICE).fit(X, y)
    stage_two = rates[-1]
    image, text = net.network_.branches
    lower, upper = text.layers

    def rates_of(module):
        return {stage_two[id(p)] for p in module.parameters()}

    assert rates_of(upper) == {1e-3} and rates_of(lower) == {5e-4}
    assert rates_of(net.network_.heads) == {1e-3}
    blocks = [unit for depth, unit in image.blocks_by_depth()]
    assert sorted({depth for depth, _ in image.blocks_by_depth()}) == [0, 1]
    assert rates_of(blocks[0]) == {5e-4} and rates_of(blocks[-1]) == {1e-3}  # the lower block, the head's conv
    assert not any(p.requires_grad for p in text.position_bias.parameters())
