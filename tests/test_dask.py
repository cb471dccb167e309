"""Distributed search: scikit-learn's own route, joblib's dask backend on a dask.distributed cluster."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from skmm import ImageEncoder, TextEncoder, TorchMLPClassifier, make_fusion
from skmm.datasets import make_multimodal_classification

distributed = pytest.importorskip("distributed")


def _search(tiny_image_params, tiny_text_params, cache):
    fusion = make_fusion((ImageEncoder(**tiny_image_params, cache=cache), "image"),
                         (TextEncoder(**tiny_text_params, cache=cache), "text"))
    pipe = Pipeline([("fuse", fusion), ("clf", LogisticRegression(C=10, max_iter=2000))])
    return GridSearchCV(pipe, {"fuse__method": ["average", "concat"],
                               "clf": [LogisticRegression(C=10, max_iter=2000),
                                       TorchMLPClassifier(hidden_layer_sizes=(16,), max_epochs=20, device="cpu",
                                                          random_state=0)]},
                        cv=StratifiedKFold(3, shuffle=True, random_state=0))


def test_tasks_ship_without_backbone_weights(tiny_text_params):
    """What dask sends to a worker per task: a fitted encoder with named weights pickles small."""
    encoder = ImageEncoder(device="cpu").fit([np.zeros((32, 32, 3), dtype=np.uint8)])
    assert len(pickle.dumps(encoder)) < 50_000  # EfficientNet-Lite0 alone is 13 MB


def test_local_cluster_search_matches_the_serial_search(tiny_image_params, tiny_text_params, tmp_path):
    import joblib

    X, y = make_multimodal_classification(n_samples=90, image_size=32, random_state=4)
    serial = _search(tiny_image_params, tiny_text_params, cache="memory").fit(X, y)
    cache = str(tmp_path / "shared_cache")  # one disk cache for every worker process
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        with joblib.parallel_backend("dask"):
            parallel = _search(tiny_image_params, tiny_text_params, cache=cache).fit(X, y)
    np.testing.assert_allclose(parallel.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"],
                               atol=1e-12)
    assert parallel.best_params_["fuse__method"] == serial.best_params_["fuse__method"]
    from skmm._store import SQLiteStore

    assert len(SQLiteStore(tmp_path / "shared_cache")) > 0  # the workers filled the shared cache


# -- embedding at scale: skmm.dask and `skmm embed -o FOLDER` ------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local:
        yield local


def test_the_dask_route_gives_the_embeddings_of_one_process(cluster, tiny_image_params, tiny_text_params):
    import dask
    import dask.dataframe as dd

    from skmm import ModalityFusion
    from skmm.dask import transform

    X, y = make_multimodal_classification(n_samples=60, image_size=32, random_state=1)
    image, text = ImageEncoder(**tiny_image_params), TextEncoder(**tiny_text_params)
    fusion = ModalityFusion([("image", image, "image"), ("text", text, "text")], method="average").fit(X, y)
    X.index = np.arange(100, 160)  # the output keeps the input's index
    with dask.config.set({"dataframe.convert-string": False}):  # image arrays stay arrays (see the user guide)
        data = dd.from_pandas(X, npartitions=4)
    with distributed.Client(cluster):
        for estimator, frame in ((image, data["image"]), (text, data["text"]), (fusion, data)):
            fitted = estimator if hasattr(estimator, "transformers_") else clone(estimator).fit(X[frame.name])
            expected = fitted.transform(X if frame is data else X[frame.name])
            out = transform(estimator, frame)
            assert out.npartitions == 4 and list(out.columns) == list(fitted.get_feature_names_out())
            result = out.compute()
            assert list(result.index) == list(X.index)
            np.testing.assert_allclose(result.to_numpy(), expected, atol=1e-5)


def _table(tmp_path, n):
    X, _ = make_multimodal_classification(n_samples=n, image_size=48, image_format="path",
                                          image_dir=tmp_path / "photos", random_state=2)
    X.to_csv(tmp_path / "posts.csv", index=False)
    return str(tmp_path / "posts.csv")


EMBED = ["--image-col", "image", "--text-col", "text", "--no-tune-malloc", "--device", "cpu", "--quiet"]


def test_a_rerun_of_skmm_embed_into_a_finished_folder_computes_nothing(tmp_path, embedded_items):
    import pandas as pd

    from skmm import clear_cache
    from skmm.cli import main

    table = _table(tmp_path, 40)
    argv = ["embed", table, "-o", str(tmp_path / "out"), "--rows-per-part", "15", *EMBED]
    assert main(argv) == 0
    assert len(embedded_items) == 80  # 40 images and 40 texts
    parts = sorted((tmp_path / "out").glob("part-*.parquet"))
    assert len(parts) == 3
    embedded_items.clear()
    clear_cache("memory")  # a new process: only the parts on disk remember anything
    assert main([*argv, "--batch-size", "8"]) == 0  # how fast is not what: the parts are kept
    assert embedded_items == []  # counted: nothing embedded again
    parts[1].unlink()  # a part lost: only it is computed again
    clear_cache("memory")
    assert main(argv) == 0
    assert len(embedded_items) == 30
    assert main(["embed", table, "-o", str(tmp_path / "single.parquet"), *EMBED]) == 0
    single, folder = pd.read_parquet(tmp_path / "single.parquet"), pd.read_parquet(tmp_path / "out")
    assert list(folder["row_id"]) == list(range(40)) and list(folder.columns) == list(single.columns)
    np.testing.assert_allclose(folder.to_numpy(), single.to_numpy(), atol=1e-5)
    assert main([*argv[:4], "--rows-per-part", "10", *EMBED]) == 1  # other settings: refused, not mixed


def test_skmm_embed_on_a_cluster_survives_a_worker_killed_mid_run(tmp_path, cluster):
    import os
    import signal
    import threading
    import time

    import pandas as pd

    from skmm.cli import main

    table = _table(tmp_path, 96)
    out = tmp_path / "out"
    killed = {}

    def kill_a_worker_once_a_part_is_written():
        # Not the default client: the command line's own must be the one its tasks go to.
        with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
            while not list(out.glob("part-*.parquet")):
                time.sleep(0.05)
            pid = next(iter(client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)
            killed["at"] = time.time()

    killer = threading.Thread(target=kill_a_worker_once_a_part_is_written)
    killer.start()
    assert main(["embed", table, "-o", str(out), "--rows-per-part", "6", "--scheduler", cluster.scheduler_address,
                 *EMBED]) == 0
    killer.join(timeout=60)
    assert "at" in killed
    parts = sorted(out.glob("part-*.parquet"))
    assert len(parts) == 16
    assert any(part.stat().st_mtime > killed["at"] for part in parts)  # the kill came mid-run
    result = pd.read_parquet(out)
    assert list(result["row_id"]) == list(range(96))  # every row once, in order
    assert main(["embed", table, "-o", str(tmp_path / "single.parquet"), *EMBED]) == 0
    np.testing.assert_allclose(result.to_numpy(), pd.read_parquet(tmp_path / "single.parquet").to_numpy(),
                               atol=1e-5)


def test_bad_rows_in_a_folder_run_name_their_lines_and_a_rerun_may_change_the_policy(tmp_path, capsys):
    import pandas as pd

    from skmm.cli import main

    table = pd.read_csv(_table(tmp_path, 24))
    table.loc[3, "image"] = str(tmp_path / "no_such.jpg")  # CSV line 5
    table.loc[20, "text"] = None  # CSV line 22
    table.to_csv(tmp_path / "broken.csv", index=False)
    argv = ["embed", str(tmp_path / "broken.csv"), "-o", str(tmp_path / "out"), "--rows-per-part", "8", *EMBED]
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert "line 5 (image: file" in error and "--on-error skip" in error
    assert main([*argv, "--on-error", "skip"]) == 0  # the same folder, another policy: it goes on
    said = capsys.readouterr().out
    assert "2 rows could not be read and were left out (--on-error skip): line 5 (image: file" in said
    assert "line 22 (text: missing value)" in said
    written = pd.read_parquet(tmp_path / "out")
    assert list(written["row_id"]) == [r for r in range(24) if r not in (3, 20)]
    assert main([*argv, "--on-error", "skip"]) == 0  # a rerun says it again, from the parts' notes
    assert "2 rows could not be read" in capsys.readouterr().out


def _fail(x):
    raise ValueError("a bad row")


def test_write_parquet_keeps_parts_and_never_takes_a_folder_it_did_not_write(tmp_path):
    import dask.dataframe as dd
    import pandas as pd
    from sklearn.preprocessing import FunctionTransformer

    from skmm.dask import write_parquet

    table = dd.from_pandas(pd.DataFrame({"x": np.arange(6.0)}), npartitions=3)
    double = FunctionTransformer(lambda x: x * 2, feature_names_out="one-to-one")  # a lambda: hashed by Dask
    assert write_parquet(double, table, tmp_path / "a") == [0, 1, 2]
    assert write_parquet(double, table, tmp_path / "a") == []
    assert list(pd.read_parquet(tmp_path / "a")["x"]) == [0, 2, 4, 6, 8, 10]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("the user's own file")
    with pytest.raises(ValueError, match="not empty"):
        write_parquet(double, table, tmp_path / "b")
    with pytest.raises(ValueError, match="a bad row"):  # stopped before its first part...
        write_parquet(FunctionTransformer(_fail, feature_names_out="one-to-one"), table, tmp_path / "c")
    other = dd.from_pandas(pd.DataFrame({"x": np.arange(4.0)}), npartitions=2)
    assert write_parquet(double, other, tmp_path / "c") == [0, 1]  # ...so nothing holds the folder
    with pytest.raises(ValueError, match="another run"):
        write_parquet(double, table, tmp_path / "c")
