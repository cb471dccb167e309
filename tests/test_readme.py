"""The README's ten-line example, run as written (real offline models)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


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
    # The generated classes show in one modality or the other: every fusion method, with either estimator at
    # its defaults, must use both (one modality alone scores about 0.6-0.75 here).
    assert min(scores.values()) > 0.85, scores
