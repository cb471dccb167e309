"""The README's ten-line example, run as written (real offline models)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline

from skmm import ModalityFusion

README = Path(__file__).resolve().parents[1] / "README.md"


def _single_modality_scores(search, X, y):
    """Each modality of the README's fusion alone, with each of its grid's estimators, on the grid's folds."""
    scores = {}
    for name, encoder, column in search.estimator.named_steps["fuse"].transformers:
        for clf in search.param_grid["clf"]:
            alone = Pipeline([("fuse", ModalityFusion([(name, clone(encoder), column)])), ("clf", clone(clf))])
            scores[f"{name} + {type(clf).__name__}"] = cross_val_score(alone, X, y, cv=search.cv).mean()
    return scores


@pytest.mark.real_model
def test_the_ten_line_example_runs_and_every_candidate_is_a_real_one():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    search = namespace["search"]
    results = search.cv_results_
    assert len(results["params"]) == 8
    scores = dict(zip((f"{p['fuse__method']} + {type(p['clf']).__name__}" for p in results["params"]),
                      results["mean_test_score"]))
    # The README's claim: every candidate is a real one. The generated classes show in one modality or the
    # other, so a candidate that uses both beats either modality alone, on the same folds, by far more than
    # the noise of an accuracy on 300 rows (a standard error of about 0.02).
    alone = _single_modality_scores(search, namespace["X"], namespace["y"])
    assert min(scores.values()) > max(alone.values()) + 0.05, (scores, alone)
