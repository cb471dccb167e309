"""MVSA sentiment (4,000 tweets with photos, 3 classes): single modalities vs early and late fusion.

5-fold stratified CV (the same folds for every pipeline) of accuracy and macro-F1, default offline
encoders (EfficientNet-Lite0, all-MiniLM-L6-v2), LogisticRegression and TorchMLPClassifier.
Every image and text is embedded once; the pipelines read the embeddings from the disk cache.

    python benchmarks/mvsa.py              # reads ../shared/datasets/mvsa (or $SKMM_MVSA_DIR)

Writes benchmarks/results/mvsa.md and mvsa.json. Skips (exit 0) when the data is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import MVSA_DIR, REPO, RESULTS  # noqa: E402


def pipelines(cache, device, random_state=0):
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from skmm import ImageEncoder, TextEncoder, TorchMLPClassifier, make_fusion, make_late_fusion

    def image():
        return ImageEncoder(device=device, cache=cache)

    def text():
        return TextEncoder(device=device, cache=cache)

    def logreg(C=1.0, balanced=False):
        return LogisticRegression(C=C, max_iter=3000, class_weight="balanced" if balanced else None)

    def mlp(balanced=False):
        return TorchMLPClassifier(hidden_layer_sizes=(512,), dropout=0.3, weight_decay=1e-4, max_epochs=100,
                                  early_stopping=True, n_iter_no_change=8, class_weight="balanced" if balanced
                                  else None, device=device, random_state=random_state)

    def early(method, clf, weights=None):
        fusion = make_fusion((image(), "image"), (text(), "text"), method=method, weights=weights)
        return Pipeline([("fuse", fusion), ("clf", clf)])

    def single(modality, clf):
        encoder = image() if modality == "image" else text()
        return Pipeline([("fuse", make_fusion((encoder, modality))), ("clf", clf)])

    yield "text only | LR C=1", single("text", logreg())
    yield "image only | LR C=1", single("image", logreg())
    yield "early concat | LR C=1", early("concat", logreg())
    yield "early average | LR C=1", early("average", logreg())
    yield "early weighted (text 2 : image 1) | LR C=1", early("weighted", logreg(), {"image": 1, "text": 2})
    yield "late average | LR C=1", make_late_fusion(("image", image(), "image", logreg()),
                                                    ("text", text(), "text", logreg()))
    yield "late weighted (text 2 : image 1) | LR C=1", make_late_fusion(
        ("image", image(), "image", logreg()), ("text", text(), "text", logreg()), method="weighted", weights=[1, 2])
    yield "late stacking | LR C=1", make_late_fusion(("image", image(), "image", logreg()),
                                                     ("text", text(), "text", logreg()), method="stacking")
    yield "text only | LR C=1 balanced", single("text", logreg(balanced=True))
    yield "image only | LR C=1 balanced", single("image", logreg(balanced=True))
    yield "early concat | LR C=1 balanced", early("concat", logreg(balanced=True))
    yield "early concat | LR C=0.3", early("concat", logreg(C=0.3))
    yield "early concat | LR C=3", early("concat", logreg(C=3.0))
    yield "early average | LR C=3", early("average", logreg(C=3.0))
    yield "early gated (learned per-post weights) | LR C=1", early("gated", logreg())
    yield "early gated (learned per-post weights) | LR C=3", early("gated", logreg(C=3.0))
    yield "early concat | MLP", early("concat", mlp())
    yield "early concat | MLP balanced", early("concat", mlp(balanced=True))
    yield "early average | MLP", early("average", mlp())
    yield "early weighted (text 2 : image 1) | MLP", early("weighted", mlp(), {"image": 1, "text": 2})
    stack_members = [
        ("early_concat", early("concat", logreg())),
        ("image", single("image", logreg())),
        ("text", single("text", logreg())),
        ("early_concat_mlp", early("concat", mlp())),
    ]
    yield "early + late stacking | LR", StackingClassifier(stack_members, final_estimator=logreg(), cv=5)
    yield "early + late stacking | LR balanced", StackingClassifier(
        stack_members, final_estimator=logreg(balanced=True), cv=5)

    # Beyond the two frozen encoders: two cheap text views that MiniLM's pooled embedding loses, as
    # stacking members beside it (any sklearn model on the same DataFrame can be one): word and
    # character n-gram TF-IDF, and VADER's tweet-tuned sentiment lexicon (pip install skmm[bench]).
    vader = text_vader()
    if vader is not None:
        lexical = [("text_tfidf", text_tfidf()), ("text_vader", vader)]
        members = [("image", single("image", logreg())), ("text", single("text", logreg()))] + lexical
        yield "late stacking + TF-IDF + VADER | LR on log-probabilities", StackingClassifier(
            members, final_estimator=log_probability_logreg(), cv=5)
        yield "late stacking + TF-IDF + VADER, early concat | LR on log-probabilities", StackingClassifier(
            members + [("early_concat", early("concat", logreg()))], final_estimator=log_probability_logreg(), cv=5)


def _vader_scores(texts):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from skmm._inputs import to_text

    analyzer = SentimentIntensityAnalyzer()
    scores = [analyzer.polarity_scores(to_text(item)) for item in texts]
    return np.array([[score[k] for k in ("neg", "neu", "pos", "compound")] for score in scores])


def _as_texts(column):
    from skmm._inputs import to_text

    return [to_text(item) for item in column]


def _log_probabilities(probabilities):
    return np.log(np.clip(probabilities, 1e-6, 1.0))


def text_vader():
    """VADER's four sentiment scores of each text, scaled, then LogisticRegression; None without vaderSentiment."""
    try:
        import vaderSentiment  # noqa: F401
    except ImportError:
        return None
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    lexicon = FunctionTransformer(_vader_scores, feature_names_out=lambda *_: ["neg", "neu", "pos", "compound"])
    return make_pipeline(ColumnTransformer([("vader", lexicon, "text")]), StandardScaler(),
                         LogisticRegression(max_iter=3000))


def text_tfidf():
    """Word 1-2-gram and character 2-5-gram TF-IDF of each text, then LogisticRegression (C=10)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.preprocessing import FunctionTransformer

    as_text = FunctionTransformer(_as_texts)
    ngrams = make_union(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True))
    return make_pipeline(ColumnTransformer([("tfidf", make_pipeline(as_text, ngrams), "text")]),
                         LogisticRegression(C=10, max_iter=3000))


def log_probability_logreg():
    """LogisticRegression on the log of the members' probabilities (a stacker sees odds, not capped values)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    return make_pipeline(FunctionTransformer(_log_probabilities), LogisticRegression(max_iter=3000))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(MVSA_DIR))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache", default=str(REPO / "benchmarks" / ".cache"))
    parser.add_argument("--only", default=None, help="run the pipelines whose name contains this text")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.data, "train.txt")):
        print(f"MVSA data not found at {args.data}: skipped.")
        return
    from sklearn.model_selection import StratifiedKFold, cross_validate

    from skmm import ImageEncoder, TextEncoder
    from skmm.datasets import load_mvsa
    from skmm.performance import tune_malloc

    tune_malloc()  # this script owns its process (see skmm.performance)
    X, y = load_mvsa(args.data)
    print(f"MVSA: {len(X)} posts, classes {dict(zip(*np.unique(y, return_counts=True)))}")
    start = time.perf_counter()
    ImageEncoder(device=args.device, cache=args.cache, progress=True).fit(X["image"]).transform(X["image"])
    image_seconds = time.perf_counter() - start
    start = time.perf_counter()
    TextEncoder(device=args.device, cache=args.cache, progress=True).fit(X["text"]).transform(X["text"])
    text_seconds = time.perf_counter() - start
    print(f"embedding pass (or cache read): images {image_seconds:.1f} s, texts {text_seconds:.1f} s")

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    rows = []
    for name, pipeline in pipelines(args.cache, args.device):
        if args.only and args.only not in name:
            continue
        start = time.perf_counter()
        scores = cross_validate(pipeline, X, y, cv=folds, scoring=("accuracy", "f1_macro"))
        rows.append({"pipeline": name, "accuracy": float(scores["test_accuracy"].mean()),
                     "accuracy_std": float(scores["test_accuracy"].std()),
                     "f1_macro": float(scores["test_f1_macro"].mean()),
                     "f1_macro_std": float(scores["test_f1_macro"].std()),
                     "seconds": time.perf_counter() - start})
        print(f"{name:<45} acc {rows[-1]['accuracy']:.3f} +- {rows[-1]['accuracy_std']:.3f}  "
              f"macro-F1 {rows[-1]['f1_macro']:.3f} +- {rows[-1]['f1_macro_std']:.3f}  ({rows[-1]['seconds']:.0f} s)",
              flush=True)
    if args.only:
        return
    os.makedirs(RESULTS, exist_ok=True)
    with open(RESULTS / "mvsa.json", "w") as handle:
        json.dump({"n_samples": len(X), "folds": "StratifiedKFold(5, shuffle=True, random_state=0)",
                   "embedding_seconds": {"images": image_seconds, "texts": text_seconds}, "results": rows},
                  handle, indent=2)
    lines = ["| pipeline | accuracy | macro-F1 |", "|---|---|---|"]
    lines += [f"| {r['pipeline'].replace('|', chr(92) + '|')} | {100 * r['accuracy']:.1f} ± {100 * r['accuracy_std']:.1f} | "
              f"{100 * r['f1_macro']:.1f} ± {100 * r['f1_macro_std']:.1f} |" for r in rows]
    with open(RESULTS / "mvsa.md", "w") as handle:
        handle.write("# MVSA (4,000 posts, 3 classes): 5-fold stratified CV, frozen offline encoders\n\n"
                     + "\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'mvsa.md'} and mvsa.json")


if __name__ == "__main__":
    main()
