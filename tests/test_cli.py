"""The skmm command line as a user types it: fit, predict, embed, and one-line errors that name the problem.

Every error case asserts the exit code, the message, and, where the problem can be seen before any model
work, that nothing was embedded (the ``embedded_items`` spy).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from skmm.cli import main
from skmm.datasets import make_multimodal_classification

from .conftest import ATOL, DEVICE, random_images

RUNTIME = ["--no-tune-malloc", "--device", DEVICE, "--batch-size", "16", "--quiet"]
COLUMNS = ["--image-col", "photo", "--text-col", "caption"]


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory):
    """A CSV whose image paths are relative to its folder, like a real dataset."""
    root = tmp_path_factory.mktemp("table")
    X, y = make_multimodal_classification(n_samples=30, image_size=48, image_format="path",
                                          image_dir=root / "photos", random_state=0)
    frame = pd.DataFrame({"photo": [os.path.relpath(p, root) for p in X["image"]], "caption": X["text"],
                          "label": np.array(["red", "green", "blue"])[y]})
    frame.to_csv(root / "posts.csv", index=False)
    return root


@pytest.fixture(scope="module")
def fitted_model(table_dir):
    model = table_dir / "model.skops"
    assert main(["fit", str(table_dir / "posts.csv"), *COLUMNS, "--target", "label", "--cv", "2", "-o", str(model),
                 *RUNTIME]) == 0
    return model


def _variant(table_dir, name, edit):
    frame = pd.read_csv(table_dir / "posts.csv")
    frame = edit(frame)
    frame.to_csv(table_dir / name, index=False)
    return str(table_dir / name)


def _fails(argv, capsys, code=1):
    assert main(argv) == code
    error = capsys.readouterr().err
    command = argv[0]
    assert error.startswith(f"skmm {command}: error: ") and error.count("\n") == 1, error  # one line
    return error


def test_help_version_and_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for command in ("demo", "fit", "predict", "embed"):
        assert command in help_text
    assert main([]) == 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("skmm ")
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    fit_help = " ".join(capsys.readouterr().out.split())
    for shown in ("(default: 5)", "(default: concat)", "(default: logreg)", "(default: raise)",
                  "(default: skmm:efficientnet_lite0)", "(default: skmm:all-MiniLM-L6-v2)", "--image-model",
                  "--text-model", "--on-error {raise,zero,nan,skip}"):
        assert shown in fit_help, shown


def test_fit_predict_embed_round_trip(table_dir, fitted_model, capsys):
    # fit (the fixture) wrote the model and a report folder beside it
    report = table_dir / "model_report"
    for name in ("report.md", "metrics.json", "per_class.csv", "confusion_matrix.csv", "confusion_matrix.png",
                 "out_of_fold_predictions.csv"):
        assert (report / name).is_file(), name
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["cross_validation"]) == {"concat fusion", "text only", "image only"}
    assert metrics["classes"] == ["blue", "green", "red"]
    assert set(metrics["per_class"]) == {"blue", "green", "red"}
    assert "true red" in (report / "confusion_matrix.csv").read_text()

    new_rows = pd.read_csv(table_dir / "posts.csv").drop(columns="label").iloc[::-1]  # reversed order
    new_rows.to_csv(table_dir / "new.csv", index=False)
    assert main(["predict", str(fitted_model), str(table_dir / "new.csv"), "-o", str(table_dir / "pred.csv"),
                 *RUNTIME]) == 0
    predictions = pd.read_csv(table_dir / "pred.csv")
    # exactly the input's columns, in order, then the new ones: no index column
    assert predictions.columns.tolist() == ["photo", "caption", "prediction", "proba_blue", "proba_green",
                                            "proba_red"]
    assert predictions["photo"].tolist() == new_rows["photo"].tolist()  # same rows, same order
    assert set(predictions["prediction"]) <= {"red", "green", "blue"}
    np.testing.assert_allclose(predictions.filter(like="proba_").sum(axis=1), 1, atol=1e-5)

    assert main(["embed", str(table_dir / "posts.csv"), *COLUMNS, "-o", str(table_dir / "emb.parquet"),
                 *RUNTIME]) == 0
    embeddings = pd.read_parquet(table_dir / "emb.parquet")
    assert embeddings.shape == (30, 1 + 1280 + 384)
    assert embeddings["row_id"].tolist() == list(range(30))
    # the names ModalityFusion gives the same blocks
    assert embeddings.columns[1] == "photo__imageencoder0" and embeddings.columns[-1] == "caption__textencoder383"


def test_a_stack_is_fitted_reported_and_predicted_as_a_pipeline_is(table_dir, capsys):
    model = table_dir / "stack.skops"
    assert main(["fit", str(table_dir / "posts.csv"), *COLUMNS, "--target", "label", "--estimator", "stack",
                 "--cv", "2", "-o", str(model), *RUNTIME]) == 0
    out = capsys.readouterr().out
    assert "2-fold CV on 30 rows" in out and "  stack " in out and "image only" in out
    metrics = json.loads((table_dir / "stack_report" / "metrics.json").read_text())
    assert set(metrics["cross_validation"]) == {"stack", "text only", "image only"}
    assert metrics["settings"]["estimator"] == "MultimodalStackingClassifier(random_state=0)"
    assert "## Per class (out-of-fold predictions of the model: stack)" in (table_dir / "stack_report"
                                                                             / "report.md").read_text()
    assert main(["predict", str(model), str(table_dir / "posts.csv"), "-o", str(table_dir / "stack.csv"),
                 *RUNTIME]) == 0
    predicted = pd.read_csv(table_dir / "stack.csv")
    from skmm import persistence

    stack = persistence.load(model)  # the same model in Python: the same probabilities
    expected = stack.predict_proba(pd.read_csv(table_dir / "posts.csv")[["photo", "caption"]])
    np.testing.assert_allclose(predicted.filter(like="proba_").to_numpy(), expected, atol=1e-6)
    assert predicted["prediction"].tolist() == list(stack.classes_[expected.argmax(axis=1)])
    # An unreadable image under --on-error zero or nan: the row is predicted from what can be read (the image is
    # handed to the model as missing; no member's encoder meets it), the same under both.
    text_only = _variant(table_dir, "stack_text_only.csv", lambda f: f.assign(
        photo=f["photo"].where(f.index != 3, "photos/missing.jpg")))
    predicted = {}
    for policy in ("zero", "nan"):
        assert main(["predict", str(model), text_only, "-o", str(table_dir / f"stack_{policy}.csv"),
                     "--on-error", policy, *RUNTIME]) == 0
        assert f"1 row keeps only its other modality (--on-error {policy}): line 5" in capsys.readouterr().out
        predicted[policy] = pd.read_csv(table_dir / f"stack_{policy}.csv").filter(like="proba_").to_numpy()
    assert np.isfinite(predicted["zero"]).all()
    np.testing.assert_allclose(predicted["nan"], predicted["zero"])
    as_missing = pd.read_csv(text_only)[["photo", "caption"]].astype(object)
    as_missing.loc[3, "photo"] = None
    np.testing.assert_allclose(predicted["zero"], stack.predict_proba(as_missing), atol=1e-6)


def test_fit_prints_cross_validation_beside_single_modality_baselines(table_dir, capsys):
    assert main(["fit", str(table_dir / "posts.csv"), *COLUMNS, "--target", "label", "--cv", "3",
                 "-o", str(table_dir / "m2.skops"), "--report", str(table_dir / "r2"), "-v", *RUNTIME]) == 0
    out = capsys.readouterr().out
    assert "3-fold CV on 30 rows" in out
    for name in ("concat fusion", "text only", "image only"):
        assert name in out
    assert "fold 3/3" in out  # -v: a line per fold
    assert (table_dir / "r2" / "report.md").is_file()


def test_a_pickle_suffix_writes_a_joblib_file_that_predict_reads(table_dir, capsys):
    model = table_dir / "model.pkl"
    assert main(["fit", str(table_dir / "posts.csv"), *COLUMNS, "--target", "label", "--cv", "0",
                 "-o", str(model), *RUNTIME]) == 0
    assert hasattr(joblib.load(model), "predict_proba")  # a pickle, as the suffix says
    assert main(["predict", str(model), str(table_dir / "posts.csv"), "-o", str(table_dir / "p.parquet"),
                 *RUNTIME]) == 0
    assert len(pd.read_parquet(table_dir / "p.parquet")) == 30


@pytest.mark.parametrize("case, argv, message", [
    ("output format", ["predict", "{model}", "{table}", "-o", "p.txt"], "output 'p.txt': unsupported format '.txt'"),
    ("output folder", ["fit", "{table}", *COLUMNS, "--target", "label", "-o", "/nonexistent_dir/m.skops"],
     "folder '/nonexistent_dir' does not exist"),
    ("model format", ["fit", "{table}", *COLUMNS, "--target", "label", "-o", "model.bin"],
     "unsupported format '.bin'"),
    ("a CSV as MODEL", ["predict", "{table}", "{table}", "-o", "p.csv"], "is not a model file"),
    ("one class", ["fit", "{one_class}", *COLUMNS, "--target", "label", "-o", "m.skops"],
     "column 'label' has a single class ('red') in its 30 labelled rows"),
    ("header only", ["fit", "{header_only}", *COLUMNS, "--target", "label", "-o", "m.skops"],
     "has no rows (only a header)"),
    ("missing column", ["fit", "{table}", "--image-col", "picture", "--text-col", "caption", "--target", "label",
                        "-o", "m.skops"], "column(s) ['picture'] not in"),
    ("missing table", ["embed", "{folder}/nope.csv", *COLUMNS, "-o", "x.parquet"], "does not exist"),
    ("table format", ["embed", "{xlsx}", *COLUMNS, "-o", "x.parquet"], "unsupported format '.xlsx'"),
])
def test_problems_are_one_line_errors_before_any_embedding(case, argv, message, table_dir, fitted_model,
                                                            embedded_items, capsys, monkeypatch):
    monkeypatch.chdir(table_dir)
    (table_dir / "table.xlsx").write_text("x")
    (table_dir / "header_only.csv").write_text("photo,caption,label\n")
    paths = {"model": str(fitted_model), "table": str(table_dir / "posts.csv"), "folder": str(table_dir),
             "xlsx": str(table_dir / "table.xlsx"), "header_only": str(table_dir / "header_only.csv"),
             "one_class": _variant(table_dir, "one_class.csv", lambda f: f.assign(label="red"))}
    error = _fails([part.format(**paths) for part in argv] + RUNTIME, capsys)
    assert message in error, error
    assert embedded_items == []


def test_a_corrupt_model_file_is_named(table_dir, capsys):
    (table_dir / "broken.skops").write_bytes(b"not a zip file")
    error = _fails(["predict", str(table_dir / "broken.skops"), str(table_dir / "posts.csv"), "-o", "p.csv", *RUNTIME],
                   capsys)
    assert "broken.skops' cannot be read as a skops model" in error


def test_negative_folds_are_a_usage_error(table_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", str(table_dir / "posts.csv"), *COLUMNS, "--target", "label", "--cv", "-1", "-o", "m.skops"])
    assert exit_info.value.code == 2
    assert "use 0 to skip cross-validation" in capsys.readouterr().err


def _with_broken_rows(table_dir):
    """posts.csv with a missing image at CSV line 5 (row 3) and no image nor text at line 9 (row 7)."""
    def edit(frame):
        frame.loc[3, "photo"] = "photos/missing.jpg"
        frame.loc[7, ["photo", "caption"]] = None
        return frame
    return _variant(table_dir, "broken.csv", edit)


def test_unreadable_rows_are_named_by_their_csv_line_before_any_embedding(table_dir, capsys, embedded_items):
    broken = _with_broken_rows(table_dir)
    error = _fails(["embed", broken, *COLUMNS, "-o", str(table_dir / "e.parquet"), *RUNTIME], capsys)
    assert "2 rows of" in error and "broken.csv cannot be embedded" in error
    assert "line 5 (photo: file" in error and "missing.jpg' does not exist" in error
    assert "line 9 (no value in any modality column)" in error and "--on-error skip" in error
    error = _fails(["fit", broken, *COLUMNS, "--target", "label", "--cv", "0", "-o", str(table_dir / "b.skops"),
                    *RUNTIME], capsys)
    assert "line 5 (photo: file" in error and "line 9 (no value in any modality column)" in error
    assert "--on-error skip" in error
    assert embedded_items == []  # a file that does not exist is found before any model runs


def test_on_error_policies_in_fit_predict_and_embed(table_dir, fitted_model, capsys):
    broken = _with_broken_rows(table_dir)
    assert main(["fit", broken, *COLUMNS, "--target", "label", "--cv", "2", "--on-error", "skip",
                 "-o", str(table_dir / "skip.skops"), *RUNTIME]) == 0
    assert "2 rows left out (--on-error skip): line 5 (photo: file" in capsys.readouterr().out
    metrics = json.loads((table_dir / "skip_report" / "metrics.json").read_text())
    assert metrics["rows"] == 28 and metrics["settings"]["on error"] == "skip"

    assert main(["predict", str(fitted_model), broken, "-o", str(table_dir / "skip.csv"), "--on-error", "skip",
                 *RUNTIME]) == 0
    assert "2 rows without" not in capsys.readouterr().out
    out = pd.read_csv(table_dir / "skip.csv", keep_default_na=False)
    assert out.columns[-1] == "reason"
    assert out.loc[3, "prediction"] == "" and "does not exist" in out.loc[3, "reason"]
    assert out.loc[7, "prediction"] == "" and out.loc[7, "reason"] == "no value in any modality column"
    assert (out.drop(index=[3, 7])["prediction"] != "").all() and (out.drop(index=[3, 7])["reason"] == "").all()

    # zero: a row with a broken image is predicted from its text, and said so; a row with nothing is an error
    # that names that row only
    error = _fails(["predict", str(fitted_model), broken, "-o", str(table_dir / "z.csv"), "--on-error", "zero",
                    *RUNTIME], capsys)
    assert "1 row of" in error and "has no modality that can be read: line 9 (no value" in error
    assert "line 5" not in error
    text_only = _variant(table_dir, "text_only.csv", lambda f: f.assign(photo=f["photo"].where(f.index != 3,
                                                                                              "photos/missing.jpg")))
    assert main(["predict", str(fitted_model), text_only, "-o", str(table_dir / "z.csv"), "--on-error", "zero",
                 *RUNTIME]) == 0
    assert "1 row keeps only its other modality (--on-error zero): line 5" in capsys.readouterr().out
    assert pd.read_csv(table_dir / "z.csv")["prediction"].notna().all()

    assert main(["embed", broken, *COLUMNS, "-o", str(table_dir / "e.parquet"), "--on-error", "skip", *RUNTIME]) == 0
    assert "2 rows left out (--on-error skip): line 5 (photo: file" in capsys.readouterr().out
    assert 3 not in pd.read_parquet(table_dir / "e.parquet")["row_id"].tolist()
    assert main(["embed", broken, *COLUMNS, "-o", str(table_dir / "e.parquet"), "--on-error", "zero", *RUNTIME]) == 0
    assert "have zeros where a value cannot be read (--on-error zero): line 5" in capsys.readouterr().out
    zeros = pd.read_parquet(table_dir / "e.parquet").filter(like="photo__").to_numpy()
    assert (zeros[[3, 7]] == 0).all() and (np.abs(zeros[0]) > 0).any()


def test_a_column_that_cannot_be_read_at_all_is_one_error(table_dir, tmp_path, capsys):
    # the table copied elsewhere: its relative image paths lead nowhere
    (tmp_path / "posts.csv").write_text((table_dir / "posts.csv").read_text())
    error = _fails(["predict", str(table_dir / "model.skops"), str(tmp_path / "posts.csv"), "-o",
                    str(tmp_path / "p.csv"), "--on-error", "zero", *RUNTIME], capsys)
    assert "no value of column 'photo'" in error and "relative to the table's folder" in error
    assert str(tmp_path) in error


def test_predict_refuses_to_overwrite_its_input_or_its_columns(table_dir, fitted_model, capsys):
    error = _fails(["predict", str(fitted_model), str(table_dir / "posts.csv"), "-o", str(table_dir / "posts.csv"),
                    *RUNTIME], capsys)
    assert "is the input table" in error
    clash = _variant(table_dir, "clash.csv", lambda f: f.assign(prediction="x"))
    error = _fails(["predict", str(fitted_model), clash, "-o", str(table_dir / "c.csv"), *RUNTIME], capsys)
    assert "already has column(s) ['prediction']" in error


def test_devices_are_checked_before_any_work(table_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["embed", str(table_dir / "posts.csv"), *COLUMNS, "-o", "e.parquet", "--device", "gpu"])
    assert exit_info.value.code == 2 and "'gpu' is not a device" in capsys.readouterr().err
    import torch

    if not torch.cuda.is_available():
        for command in (["embed", str(table_dir / "posts.csv"), *COLUMNS, "-o", str(table_dir / "e.parquet")],
                        ["predict", str(table_dir / "model.skops"), str(table_dir / "posts.csv"), "-o",
                         str(table_dir / "p.csv")]):
            error = _fails([*command, "--no-tune-malloc", "--device", "cuda"], capsys)
            assert "--device cuda: device 'cuda' is not available on this machine" in error


def test_files_are_readable_like_any_other_the_user_writes(table_dir, fitted_model):
    assert main(["predict", str(fitted_model), str(table_dir / "posts.csv"), "-o", str(table_dir / "perm.csv"),
                 *RUNTIME]) == 0
    mask = os.umask(0)
    os.umask(mask)
    for path in (fitted_model, table_dir / "perm.csv"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, oct(path.stat().st_mode)


def test_a_reused_report_folder_keeps_no_stale_file(table_dir, capsys):
    model = str(table_dir / "again.skops")
    assert main(["fit", str(table_dir / "posts.csv"), *COLUMNS, "--target", "label", "--cv", "2", "-o", model,
                 *RUNTIME]) == 0
    assert (table_dir / "again_report" / "confusion_matrix.png").exists()
    assert main(["fit", str(table_dir / "posts.csv"), *COLUMNS, "--target", "label", "--cv", "0", "-o", model,
                 *RUNTIME]) == 0
    assert sorted(p.name for p in (table_dir / "again_report").iterdir()) == ["metrics.json", "report.md"]
    assert "Cross-validation skipped (--cv 0)" in (table_dir / "again_report" / "report.md").read_text()


def test_texts_that_are_file_names_get_a_warning_and_a_non_utf8_table_a_hint(table_dir, capsys):
    _variant(table_dir, "paths.csv", lambda f: f.assign(caption=f["photo"]))
    assert main(["embed", str(table_dir / "paths.csv"), *COLUMNS, "-o", str(table_dir / "x.parquet"), *RUNTIME]) == 0
    assert "values of text column 'caption' are names of files" in capsys.readouterr().out
    (table_dir / "latin1.csv").write_bytes("photo,caption\nphotos/000000.jpg,caf\xe9\n".encode("latin-1"))
    error = _fails(["embed", str(table_dir / "latin1.csv"), *COLUMNS, "-o", "x.parquet", *RUNTIME], capsys)
    assert "it is not UTF-8 text" in error and "save it as UTF-8" in error


def test_a_model_that_cannot_be_loaded_is_named(table_dir, capsys):
    error = _fails(["embed", str(table_dir / "posts.csv"), *COLUMNS, "--image-model", "timm:no_such_model",
                    "-o", str(table_dir / "x.parquet"), *RUNTIME], capsys)
    assert "could not load the image model 'timm:no_such_model' for column 'photo'" in error


def test_text_model_option_is_used(table_dir, tiny_text_model, capsys):
    assert main(["embed", str(table_dir / "posts.csv"), *COLUMNS, "--text-model", tiny_text_model,
                 "-o", str(table_dir / "tiny.parquet"), *RUNTIME]) == 0
    assert pd.read_parquet(table_dir / "tiny.parquet").shape == (30, 1 + 1280 + 128)


def test_predict_on_another_device_refreshes_the_cache_keys(table_dir, fitted_model, monkeypatch):
    # A model fitted on one device and run on another must key its embeddings by where they are made.
    from skmm import persistence
    from skmm.cli import _commands

    moved = []
    original = _commands.apply_runtime

    def spy(encoders, args, folder, on_error):
        original(encoders, args, folder, on_error)
        moved.extend(encoders)

    monkeypatch.setattr(_commands, "apply_runtime", spy)
    assert main(["predict", str(fitted_model), str(table_dir / "posts.csv"), "-o", str(table_dir / "d.csv"),
                 *RUNTIME]) == 0
    image = moved[0]
    stale = persistence.load(fitted_model).steps[0][1].transformers_[0][1]
    stale.device_, stale.fingerprint_ = "cuda", "a key made on a GPU"
    assert stale.move_to(DEVICE).fingerprint_ == image.fingerprint_ != "a key made on a GPU"


def test_mlp_on_average_fusion_scores_near_logistic_regression(tmp_path, capsys):
    X, y = make_multimodal_classification(n_samples=90, image_size=48, image_format="path",
                                          image_dir=tmp_path / "photos", random_state=1)
    pd.DataFrame({"photo": X["image"], "caption": X["text"], "label": y}).to_csv(tmp_path / "t.csv", index=False)
    accuracy = {}
    for estimator in ("logreg", "mlp"):
        assert main(["fit", str(tmp_path / "t.csv"), *COLUMNS, "--target", "label", "--fusion", "average",
                     "--estimator", estimator, "--cv", "3", "-o", str(tmp_path / f"{estimator}.skops"),
                     *RUNTIME]) == 0
        scores = json.loads((tmp_path / f"{estimator}_report" / "metrics.json").read_text())["cross_validation"]
        accuracy[estimator] = np.mean(scores["average fusion"]["scores"]["accuracy"])
    capsys.readouterr()
    assert accuracy["mlp"] > accuracy["logreg"] - 0.05 and accuracy["mlp"] > 0.8, accuracy


def test_a_model_stuck_at_the_majority_class_warns(tmp_path, capsys):
    # 1,000 rows (early stopping on by itself) that all show the same image and text: nothing can beat
    # predicting the majority class, and the user must be told so. (One distinct image and text: the
    # cache embeds each once.)
    X, _ = make_multimodal_classification(n_samples=1, image_size=48, image_format="path",
                                          image_dir=tmp_path / "photos", random_state=2)
    labels = np.where(np.random.default_rng(0).random(1000) < 0.2, "rare", "common")
    pd.DataFrame({"photo": X["image"][0], "caption": X["text"][0], "label": labels}).to_csv(tmp_path / "t.csv",
                                                                                          index=False)
    with pytest.warns(Warning, match="no better than always predicting the most frequent class"):
        assert main(["fit", str(tmp_path / "t.csv"), *COLUMNS, "--target", "label", "--estimator", "mlp",
                     "--cv", "0", "-o", str(tmp_path / "m.skops"), *RUNTIME]) == 0


def test_predict_writes_the_input_columns_back_as_they_were(table_dir, fitted_model):
    _variant(table_dir, "ids.csv", lambda f: f.assign(post_id=[f"00{i}" for i in range(len(f))], note="NA"))
    assert main(["predict", str(fitted_model), str(table_dir / "ids.csv"), "-o", str(table_dir / "ids_out.csv"),
                 *RUNTIME]) == 0
    source = (table_dir / "ids.csv").read_text().splitlines()
    written = (table_dir / "ids_out.csv").read_text().splitlines()
    assert written[0].startswith(source[0] + ",prediction")
    for before, after in zip(source[1:], written[1:]):
        assert after.startswith(before + ",")  # "001" stays "001", "NA" stays "NA"


def test_precision_is_applied_to_every_encoder_and_predict_keeps_the_models_own(table_dir, fitted_model,
                                                                                monkeypatch):
    from skmm.cli import _commands

    seen = []
    original = _commands.apply_runtime

    def spy(encoders, args, folder, on_error):
        original(encoders, args, folder, on_error)
        seen.append([(encoder.precision, encoder.precision_) for encoder in encoders])

    monkeypatch.setattr(_commands, "apply_runtime", spy)
    for extra in ([], ["--precision", "fp32"]):
        assert main(["predict", str(fitted_model), str(table_dir / "posts.csv"), "-o", str(table_dir / "p.csv"),
                     *RUNTIME, *extra]) == 0
    assert seen[0] == [("auto", "fp32"), ("auto", "fp32")] or DEVICE != "cpu"  # the model's own: fp32 on a CPU
    assert seen[1] == [("fp32", "fp32"), ("fp32", "fp32")]


@pytest.mark.skipif(DEVICE != "cpu", reason="the CPU's bf16 speed mode")
def test_embed_with_bf16_is_a_cpu_speed_mode_and_fp32_is_the_default(table_dir):
    import warnings

    from skmm._device import cpu_low_precision_support

    runs = {}
    for precision in ("auto", "fp32", "bf16"):
        output = table_dir / f"emb_{precision}.parquet"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main(["embed", str(table_dir / "posts.csv"), *COLUMNS, "-o", str(output), *RUNTIME,
                         "--precision", precision]) == 0
        runs[precision] = pd.read_parquet(output).to_numpy()[:, 1:], [str(w.message) for w in caught]
    np.testing.assert_array_equal(runs["auto"][0], runs["fp32"][0])
    if "bf16" in cpu_low_precision_support("openvino") and "bf16" in cpu_low_precision_support("torch"):
        assert not np.array_equal(runs["bf16"][0], runs["fp32"][0])
        a, b = runs["bf16"][0], runs["fp32"][0]
        assert ((a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min() > 0.98
    else:
        assert any("no bf16 instructions" in message for message in runs["bf16"][1])
        np.testing.assert_array_equal(runs["bf16"][0], runs["fp32"][0])


# -- outputs proven writable before any model work -----------------------------------------------------------


@pytest.fixture
def no_model_work(monkeypatch, embedded_items):
    """Fails the test if an encoder is fitted or run, a saved model loaded, or a cross-validation started."""
    from skmm import ImageEncoder, TextEncoder
    from skmm.cli import _commands, _report

    def forbidden(*args, **kwargs):
        raise AssertionError("model work before the outputs were checked")

    for encoder in (ImageEncoder, TextEncoder):
        for method in ("fit", "transform", "encode_rows"):
            monkeypatch.setattr(encoder, method, forbidden)
    monkeypatch.setattr(_report, "cross_validate", forbidden)
    monkeypatch.setattr(_commands, "load_model", forbidden)
    yield
    assert embedded_items == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="/proc takes no new file (Linux), even for root")
@pytest.mark.parametrize("argv, named", [
    (["fit", "{table}", *COLUMNS, "--target", "label", "-o", "/proc/m3.skops"], "output '/proc/m3.skops'"),
    (["fit", "{table}", *COLUMNS, "--target", "label", "-o", "{folder}/m4.skops", "--report", "/proc/report"],
     "report folder '/proc/report'"),
    (["predict", "{model}", "{table}", "-o", "/proc/p.csv"], "output '/proc/p.csv'"),
    (["embed", "{table}", *COLUMNS, "-o", "/proc/e.parquet"], "output '/proc/e.parquet'"),
    (["embed", "{table}", *COLUMNS, "-o", "/proc/parts/"], "output '/proc/parts'"),
])
def test_an_output_that_cannot_be_written_is_refused_before_any_model_work(argv, named, table_dir, fitted_model,
                                                                            no_model_work, capsys):
    paths = {"table": str(table_dir / "posts.csv"), "model": str(fitted_model), "folder": str(table_dir)}
    error = _fails([part.format(**paths) for part in argv] + RUNTIME, capsys)
    assert f"{named}: cannot create a file in folder '/proc'" in error, error
    assert ".tmp" not in error
    assert not (table_dir / "m4.skops").exists()


def test_an_existing_report_folder_is_probed_inside(table_dir, fitted_model, no_model_work, capsys, monkeypatch):
    from skmm import _files

    report = table_dir / "locked_report"
    report.mkdir(exist_ok=True)
    original = _files.tempfile.mkstemp

    def refuse_in_report(*args, dir=None, **kwargs):  # a read-only folder, as root cannot make one with chmod
        if Path(dir) == report:
            raise PermissionError(13, "Permission denied", str(report / ".report.md.x.tmp"))
        return original(*args, dir=dir, **kwargs)

    monkeypatch.setattr(_files.tempfile, "mkstemp", refuse_in_report)
    error = _fails(["fit", str(table_dir / "posts.csv"), *COLUMNS, "--target", "label", "-o",
                    str(table_dir / "m5.skops"), "--report", str(report), *RUNTIME], capsys)
    assert f"report folder '{report}': cannot create a file in folder '{report}' (Permission denied)" in error
    assert ".tmp" not in error


def test_a_failed_write_names_the_users_file_never_the_temporary_one(tmp_path):
    import errno

    from skmm._files import atomic_write, atomic_write_bytes, check_writable

    def disk_full(temporary):
        raise OSError(errno.ENOSPC, "No space left on device", temporary)

    with pytest.raises(OSError, match="No space left on device") as error:
        atomic_write(tmp_path / "model.skops", disk_full)
    assert str(tmp_path / "model.skops") in str(error.value) and ".tmp" not in str(error.value)
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too
    if os.path.isdir("/proc/self"):
        for attempt in (lambda: atomic_write_bytes("/proc/m3.skops", b"x"), lambda: check_writable("/proc/m3.skops")):
            with pytest.raises(OSError) as error:
                attempt()
            assert error.value.filename == "/proc/m3.skops" and ".tmp" not in str(error.value)
    check_writable(tmp_path / "fine.csv")
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing


# -- empty texts are missing values ----------------------------------------------------------------------------


def test_empty_and_blank_texts_are_missing_values_in_python(tiny_text_params, tiny_image_params):
    from skmm import EncodingError, ImageEncoder, ModalityFusion, TextEncoder
    from skmm._inputs import is_missing

    assert [is_missing(text) for text in ("", "   ", "\t\n", " a ", "0", "a")] == [True] * 3 + [False] * 3
    texts = pd.Series(["fire city", "", "   ", None, " fire city "], index=[10, 11, 12, 13, 14], name="caption")
    with pytest.raises(EncodingError, match="row 11: missing value; row 12: missing value; row 13: missing value"):
        TextEncoder(**tiny_text_params).fit(texts).transform(texts)
    with pytest.warns(UserWarning, match="row 11"):
        embeddings, failed = TextEncoder(**tiny_text_params, on_error="zero").fit(texts).encode(texts)
    assert failed.tolist() == [False, True, True, True, False]
    # a text with letters is embedded as it always was, surrounding spaces included
    alone = TextEncoder(**tiny_text_params).fit(["x"])
    np.testing.assert_allclose(embeddings[[0, 4]], alone.transform(["fire city", " fire city "]), atol=ATOL)

    X = pd.DataFrame({"image": random_images(1) * 5, "text": texts.tolist()})
    fused = ModalityFusion([("image", ImageEncoder(**tiny_image_params), "image"),
                            ("text", TextEncoder(**tiny_text_params), "text")]).fit_transform(X)
    # "", "   " and None: the same missing modality (the training mean and a 0 presence indicator)
    np.testing.assert_array_equal(fused[1], fused[3])
    np.testing.assert_array_equal(fused[2], fused[3])
    assert not np.allclose(fused[0], fused[3])


def test_empty_texts_are_reported_by_line_in_fit_predict_and_embed(table_dir, fitted_model, capsys):
    def blank(frame):
        frame.loc[2, "caption"] = ""  # CSV line 4: an empty field
        frame.loc[5, "caption"] = "   "  # CSV line 7: spaces only
        return frame
    table = _variant(table_dir, "blank.csv", blank)
    assert main(["fit", table, *COLUMNS, "--target", "label", "--cv", "2", "-o", str(table_dir / "blank.skops"),
                 *RUNTIME]) == 0
    note = ("2 rows have no text in 'caption' (a missing value: an empty or blank field), used from their other "
            "modality: line 4, line 7")
    assert note in capsys.readouterr().out
    metrics = json.loads((table_dir / "blank_report" / "metrics.json").read_text())
    assert note in metrics["notes"] and f"- {note}" in (table_dir / "blank_report" / "report.md").read_text()
    assert metrics["cross_validation"]["text only"]["rows"] == 28

    pd.read_csv(table_dir / "posts.csv").assign(caption=lambda f: f["caption"].where(f.index != 3, "")).to_parquet(
        table_dir / "blank.parquet")  # Parquet keeps an empty string as it is
    assert main(["predict", str(fitted_model), str(table_dir / "blank.parquet"), "-o", str(table_dir / "bp.csv"),
                 *RUNTIME]) == 0
    assert ("1 row has no text in 'caption' (a missing value: an empty or blank field), predicted from its other "
            "modality: row 4") in capsys.readouterr().out
    assert pd.read_csv(table_dir / "bp.csv")["prediction"].notna().all()

    error = _fails(["embed", table, *COLUMNS, "-o", str(table_dir / "blank.parquet"), *RUNTIME], capsys)
    assert "line 4 (caption: missing value); line 7 (caption: missing value)" in error


# -- folds: as many as the data allows -------------------------------------------------------------------------


def test_a_class_rarer_than_the_folds_lowers_them_and_says_so(table_dir, capsys):
    rare = _variant(table_dir, "rare.csv", lambda f: f.assign(label=f["label"].where(~f.index.isin([0, 1]), "rare")))
    assert main(["fit", rare, *COLUMNS, "--target", "label", "-o", str(table_dir / "rare.skops"), *RUNTIME]) == 0
    out = capsys.readouterr().out
    note = ("--cv 5: class 'rare' of column 'label' has only 2 labelled rows, so cross-validation uses 2 folds "
            "(the most it allows)")
    assert note in out and "2-fold CV on 30 rows" in out and "wrote " in out
    metrics = json.loads((table_dir / "rare_report" / "metrics.json").read_text())
    assert note in metrics["notes"] and metrics["settings"]["folds"] == 2
    assert all(len(result["seconds"]) == 2 for result in metrics["cross_validation"].values())

    single = _variant(table_dir, "single.csv", lambda f: f.assign(label=f["label"].where(f.index != 0, "rare")))
    assert main(["fit", single, *COLUMNS, "--target", "label", "-o", str(table_dir / "single.skops"),
                 *RUNTIME]) == 0
    out = capsys.readouterr().out
    note = ("--cv 5: class 'rare' of column 'label' has only 1 labelled row, so cross-validation is skipped (it "
            "needs 2 rows of every class); the model is still fitted on every row")
    assert note in out and "fold CV" not in out
    assert (table_dir / "single.skops").is_file()
    report = (table_dir / "single_report" / "report.md").read_text()
    assert f"- {note}" in report and "Cross-validation skipped (too few rows in a class, see above)" in report


# -- what --help says is what is used; counts agree with their words --------------------------------------------


def test_help_names_the_classifier_the_report_names(fitted_model, capsys):
    import argparse

    from skmm.cli import _models
    from skmm.cli._parser import ESTIMATORS

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    fit_help = "".join(capsys.readouterr().out.split())  # argparse wraps anywhere
    report = json.loads((fitted_model.parent / "model_report" / "metrics.json").read_text())
    assert report["settings"]["estimator"] == ESTIMATORS["logreg"]
    for name, built in ESTIMATORS.items():
        assert f"{name}:{built}" in fit_help
        args = argparse.Namespace(estimator=name, device="auto", fusion="concat", image_col="photo",
                                  text_col="caption", table_cols=None)
        model = _models.build_model(args, None, None)
        assert _models.model_settings(args, model)["estimator"] == built
        assert name == "stack" or repr(model.named_steps["clf"]) == built


def test_counts_agree_with_their_words():
    from skmm.cli._io import CLIError
    from skmm.cli._rows import Readability, describe_missing, enforce

    said = {1: ("1 row keeps only its other modality", "1 row has zeros", "1 row of t.csv has no modality",
                ("1 row has no text in 'caption' (a missing value: an empty or blank field), used from its other "
                 "modality: line 5")),
            2: ("2 rows keep only their other modality", "2 rows have zeros", "2 rows of t.csv have no modality",
                ("2 rows have no text in 'caption' (a missing value: an empty or blank field), used from their "
                 "other modality: line 5, line 9"))}
    for n, (kept, filled, hopeless, missing) in said.items():
        lines = [5, 9][:n]
        reasons = {line: "photo: cannot be read" for line in lines}
        assert enforce(Readability("line", reasons=reasons), policy="zero", verb="used", table="t.csv",
                       folder=".").startswith(kept)
        assert enforce(Readability("line", reasons=reasons), policy="zero", verb="embedded", table="t.csv",
                       folder=".", per_row=False).startswith(filled)
        with pytest.raises(CLIError, match=hopeless):
            enforce(Readability("line", reasons=reasons, hopeless=lines), policy="zero", verb="used", table="t.csv",
                    folder=".")
        assert describe_missing(Readability("line", missing={"caption": ("text", lines)}), "used") == [missing]


def test_a_folder_output_says_was_for_one_row(table_dir, capsys):
    broken = _variant(table_dir, "one_broken.csv", lambda f: f.assign(photo=f["photo"].where(f.index != 3, "x.jpg")))
    assert main(["embed", broken, *COLUMNS, "-o", str(table_dir / "one_broken_parts"), "--on-error", "skip",
                 *RUNTIME]) == 0
    assert "1 row could not be read and was left out (--on-error skip): line 5 (photo: file" in capsys.readouterr().out


def test_table_columns_are_a_third_modality_in_fit_and_predict(table_dir, tmp_path, capsys, embedded_items):
    def with_table(frame):
        rng = np.random.default_rng(0)
        frame["price"] = frame["label"].map({"red": 10.0, "green": 20.0, "blue": 30.0}) + rng.normal(0, 2, len(frame))
        frame["brand"] = frame["label"].map({"red": "acme", "green": "zeta", "blue": "acme"})
        return frame

    table = _variant(table_dir, "posts_with_table.csv", with_table)
    model = tmp_path / "m.skops"
    assert _fails(["fit", table, *COLUMNS, "--target", "label", "--table-cols", "price,label", "-o", str(model),
                   *RUNTIME], capsys).endswith("'label' is already the --target column\n")
    assert _fails(["fit", table, *COLUMNS, "--target", "label", "--table-cols", "price, price", "-o", str(model),
                   *RUNTIME], capsys).endswith("names ['price'] twice\n")
    assert "did you mean 'price'?" in _fails(["fit", table, *COLUMNS, "--target", "label", "--table-cols", "prise",
                                              "-o", str(model), *RUNTIME], capsys)
    assert embedded_items == []  # refused before any model work
    assert main(["fit", table, *COLUMNS, "--target", "label", "--table-cols", "price,brand", "--cv", "2",
                 "-o", str(model), *RUNTIME]) == 0
    assert "table only" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "m_report" / "metrics.json").read_text())
    assert set(metrics["cross_validation"]) == {"concat fusion", "text only", "image only", "table only",
                                                "image + text"}  # the last: what the table columns add
    assert np.mean(metrics["cross_validation"]["table only"]["scores"]["accuracy"]) > 0.8  # the price says the class

    new = pd.read_csv(table).drop(columns="label").head(4)
    new.loc[0, ["photo", "caption"]] = None  # the table alone: still predicted
    new.loc[1, ["price", "brand"]] = None  # no table value: from the image and the text
    new.loc[2, "price"] = None  # one cell: imputed
    new.to_csv(table_dir / "new_with_table.csv", index=False)  # beside the photos its paths name
    assert main(["predict", str(model), str(table_dir / "new_with_table.csv"), "-o", str(tmp_path / "pred.csv"),
                 *RUNTIME]) == 0
    out = capsys.readouterr().out
    assert "1 row has no table value in 'price, brand'" in out and "from its other modalities: line 3" in out
    assert "no image in 'photo'" in out and "line 2" in out
    predictions = pd.read_csv(tmp_path / "pred.csv")
    assert predictions["prediction"].notna().all()
    np.testing.assert_allclose(predictions.filter(like="proba_").sum(axis=1), 1, atol=1e-5)

    new["price"] = new["price"].astype(object)
    new.loc[3, "price"] = "unknown"  # not a number: by --on-error, an error naming it, the row left out, or imputed
    new.to_csv(table_dir / "new_with_table.csv", index=False)
    argv = ["predict", str(model), str(table_dir / "new_with_table.csv"), "-o", str(tmp_path / "pred.csv"), *RUNTIME]
    assert "line 5 (price: 'unknown' is not a number)" in _fails(argv, capsys)
    assert main([*argv, "--on-error", "skip"]) == 0
    assert "line 5 (price: 'unknown' is not a number)" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "pred.csv")["prediction"].isna().tolist() == [False, False, False, True]
    assert main([*argv, "--on-error", "zero"]) == 0
    assert "taken as missing and imputed (--on-error zero): line 5" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "pred.csv")["prediction"].notna().all()


def test_a_numeric_table_column_with_a_few_words_stays_numeric_in_fit(table_dir, tmp_path, capsys, embedded_items):
    """A '?' in a column of prices makes pandas read it as text: one-hot encoded as categories, the prices would
    be lost; it is a column of numbers, and the '?' follows --on-error as in predict."""
    from skmm import persistence

    def with_price(frame):
        frame["price"] = frame["label"].map({"red": 10.0, "green": 20.0, "blue": 30.0}).astype(object)
        frame.loc[4, "price"] = "?"
        return frame

    table = _variant(table_dir, "posts_with_a_question_mark.csv", with_price)
    argv = ["fit", table, *COLUMNS, "--target", "label", "--table-cols", "price", "--cv", "0",
            "-o", str(tmp_path / "m.skops"), *RUNTIME]
    assert "line 6 (price: '?' is not a number)" in _fails(argv, capsys)
    assert embedded_items == []  # before any model work
    assert main([*argv, "--on-error", "zero"]) == 0
    assert "taken as missing and imputed (--on-error zero): line 6" in capsys.readouterr().out
    encoder = persistence.load(tmp_path / "m.skops").named_steps["fuse"].named_transformers_["table"]
    assert encoder.numeric_ == ["price"] and encoder.categorical_ == []
