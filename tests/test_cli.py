"""The skmm command line: fit, predict, embed, and errors that name the problem."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from skmm.cli import main
from skmm.datasets import make_multimodal_classification

from .conftest import DEVICE

RUNTIME = ["--no-tune-malloc", "--device", DEVICE, "--batch-size", "16"]


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


def test_help_names_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for command in ("demo", "fit", "predict", "embed"):
        assert command in help_text
    assert main([]) == 2


def test_fit_predict_embed_round_trip(table_dir, capsys):
    model = table_dir / "model.skops"
    code = main(["fit", str(table_dir / "posts.csv"), "--image-col", "photo", "--text-col", "caption",
                 "--target", "label", "--cv", "2", "-o", str(model), *RUNTIME])
    assert code == 0 and model.exists()
    assert "2-fold CV on 30 rows: accuracy" in capsys.readouterr().out

    new_rows = pd.read_csv(table_dir / "posts.csv").drop(columns="label").iloc[::-1]  # reversed order
    new_rows.index = [f"item{i}" for i in range(len(new_rows))]
    new_rows.to_csv(table_dir / "new.csv", index=False)
    assert main(["predict", str(model), str(table_dir / "new.csv"), "-o", str(table_dir / "pred.csv"),
                 *RUNTIME]) == 0
    predictions = pd.read_csv(table_dir / "pred.csv", index_col=0)
    source = pd.read_csv(table_dir / "new.csv")
    assert predictions["photo"].tolist() == source["photo"].tolist()  # same rows, same order
    assert set(predictions["prediction"]) <= {"red", "green", "blue"}
    probabilities = predictions[["proba_blue", "proba_green", "proba_red"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)

    assert main(["embed", str(table_dir / "posts.csv"), "--image-col", "photo", "--text-col", "caption",
                 "-o", str(table_dir / "emb.parquet"), *RUNTIME]) == 0
    embeddings = pd.read_parquet(table_dir / "emb.parquet")
    assert embeddings.shape == (30, 1280 + 384)
    assert embeddings.columns[0] == "photo__0" and embeddings.columns[-1] == "caption__383"


def test_missing_column_is_named(table_dir, capsys):
    code = main(["fit", str(table_dir / "posts.csv"), "--image-col", "picture", "--text-col", "caption",
                 "--target", "label", "-o", str(table_dir / "x.skops"), *RUNTIME])
    assert code == 1
    error = capsys.readouterr().err
    assert "['picture']" in error and "'photo'" in error


def test_unreadable_image_names_the_row_and_column(table_dir, capsys):
    frame = pd.read_csv(table_dir / "posts.csv")
    frame.loc[3, "photo"] = "photos/missing.jpg"
    frame.to_csv(table_dir / "broken.csv", index=False)
    code = main(["embed", str(table_dir / "broken.csv"), "--image-col", "photo", "--text-col", "caption",
                 "-o", str(table_dir / "e.parquet"), *RUNTIME])
    assert code == 1
    error = capsys.readouterr().err
    assert "row 3" in error and "'photo'" in error and "missing.jpg" in error and "does not exist" in error


def test_missing_table_and_unsupported_format(table_dir, capsys):
    assert main(["embed", str(table_dir / "nope.csv"), "--image-col", "a", "--text-col", "b",
                 "-o", "x.parquet", *RUNTIME]) == 1
    assert "does not exist" in capsys.readouterr().err
    (table_dir / "table.xlsx").write_text("x")
    assert main(["embed", str(table_dir / "table.xlsx"), "--image-col", "a", "--text-col", "b",
                 "-o", "x.parquet", *RUNTIME]) == 1
    assert "unsupported format" in capsys.readouterr().err
