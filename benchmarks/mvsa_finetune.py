"""MVSA with the encoders' top blocks trained: MultimodalNetClassifier on the same 5 folds as mvsa.py.

The offline EfficientNet-Lite0 and all-MiniLM-L6-v2, each cut below its top ``train_blocks`` blocks; the
frozen trunks run once per item (disk cache, shared by every configuration and fold), the top blocks train
with the fusion and the head. Reports accuracy, weighted F1 (what the papers report) and macro-F1, and
minutes per fold on this machine.

    python benchmarks/mvsa_finetune.py                        # every configuration below, 5 folds each
    python benchmarks/mvsa_finetune.py --only "blocks=1" --folds 1

Appends to benchmarks/results/mvsa_finetune.json and rewrites mvsa_finetune.md. Skips when the data is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS, add_mvsa_arguments, mvsa_present  # noqa: E402

METRICS = ("accuracy", "f1_weighted", "f1_macro")

# name -> MultimodalNetClassifier parameters (besides the modalities)
CONFIGURATIONS = {
    "concat, blocks=0 (fusion + head on frozen embeddings)": dict(fusion="concat", train_blocks=0),
    "concat, blocks=1": dict(fusion="concat", train_blocks=1),
    "concat, blocks=2": dict(fusion="concat", train_blocks=2),
    "attention, blocks=1": dict(fusion="attention", train_blocks=1),
    "gated, blocks=1": dict(fusion="gated", train_blocks=1),
    "concat, blocks=1, augment": dict(fusion="concat", train_blocks=1, augment=True),
    # "seeds": a soft VotingClassifier of that many networks, random_state 0, 1, ... (not a network parameter)
    "concat, blocks=1, soft vote of 3 seeds": dict(fusion="concat", train_blocks=1, seeds=3),
}


def network(params, cache, device, random_state=0):
    """The network of ``params``; with ``seeds=n`` among them, a soft vote of n networks seeded from random_state."""
    from sklearn.ensemble import VotingClassifier

    from skmm import ImageEncoder, MultimodalNetClassifier, TextEncoder

    modalities = [("image", ImageEncoder(device=device, cache=cache), "image"),
                  ("text", TextEncoder(device=device, cache=cache), "text")]
    params = dict(params)
    seeds = params.pop("seeds", 1)
    networks = [MultimodalNetClassifier(modalities, random_state=random_state + seed, device=device, **params)
                for seed in range(seeds)]
    if seeds == 1:
        return networks[0]
    return VotingClassifier([(f"seed{seed}", net) for seed, net in enumerate(networks)], voting="soft")


def _epochs(model):
    """Epochs trained and the best one (lists for a vote: one per network)."""
    nets = getattr(model, "estimators_", [model])
    return [net.n_iter_ for net in nets], [net.best_epoch_ for net in nets]


def _run(name, params, X, y, folds, args):
    """One configuration on every fold: its scores, minutes and epochs, printed per fold, as a results row."""
    from sklearn.metrics import accuracy_score, f1_score

    scores, minutes, epochs = {m: [] for m in METRICS}, [], []
    for i, (train, test) in enumerate(folds, start=1):
        start = time.perf_counter()
        model = network(params, args.cache, args.device).fit(X.iloc[train], y[train])
        predicted = model.predict(X.iloc[test])
        minutes.append((time.perf_counter() - start) / 60)
        trained, best = _epochs(model)
        epochs.append(trained if len(trained) > 1 else trained[0])
        scores["accuracy"].append(accuracy_score(y[test], predicted))
        scores["f1_weighted"].append(f1_score(y[test], predicted, average="weighted"))
        scores["f1_macro"].append(f1_score(y[test], predicted, average="macro"))
        print(f"{name} fold {i}: acc {scores['accuracy'][-1]:.3f} weighted-F1 {scores['f1_weighted'][-1]:.3f} "
              f"macro-F1 {scores['f1_macro'][-1]:.3f} ({minutes[-1]:.1f} min, {epochs[-1]} epochs, best "
              f"{best if len(best) > 1 else best[0]})", flush=True)
    row = {"configuration": name, "params": params, "folds": len(folds), "minutes_per_fold": minutes,
           "epochs": epochs, **{m: float(np.mean(v)) for m, v in scores.items()},
           **{f"{m}_std": float(np.std(v)) for m, v in scores.items()}, "per_fold": scores}
    print(f"== {name}: acc {row['accuracy']:.3f} weighted-F1 {row['f1_weighted']:.3f} macro-F1 "
          f"{row['f1_macro']:.3f}, {np.mean(minutes):.1f} min per fold", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_mvsa_arguments(parser)
    parser.add_argument("--only", default=None,
                        help="run the configurations whose name contains this text (=NAME: that one only)")
    parser.add_argument("--folds", type=int, default=5, help="how many of the 5 folds to run")
    parser.add_argument("--set", default=None, help="extra parameters as JSON, e.g. '{\"max_epochs\": 10}'")
    args = parser.parse_args()
    if not mvsa_present(args):
        return
    from sklearn.model_selection import StratifiedKFold

    from skmm.datasets import load_mvsa
    from skmm.performance import tune_malloc

    tune_malloc()  # this script owns its process (see skmm.performance)
    X, y = load_mvsa(args.data)
    folds = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(X, y))[:args.folds]
    extra = json.loads(args.set) if args.set else {}
    rows = []
    for name, params in CONFIGURATIONS.items():
        if args.only and not (name == args.only[1:] if args.only.startswith("=") else args.only in name):
            continue
        rows.append(_run(name, {**params, **extra}, X, y, folds, args))
    os.makedirs(RESULTS, exist_ok=True)
    history_path = RESULTS / "mvsa_finetune.json"
    history = json.loads(history_path.read_text()) if history_path.exists() else []
    history.append({"date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows})
    history_path.write_text(json.dumps(history, indent=2))
    latest = {}
    for run in history:
        for row in run["rows"]:
            latest[(row["configuration"], json.dumps(row["params"], sort_keys=True))] = row
    lines = ["| configuration | folds | accuracy | weighted F1 | macro-F1 | min / fold |", "|---|---|---|---|---|---|"]
    for row in latest.values():
        lines.append(f"| {row['configuration']} {json.dumps(row['params'])} | {row['folds']} | " + " | ".join(
            f"{100 * row[m]:.1f} ± {100 * row[m + '_std']:.1f}" for m in METRICS)
            + f" | {np.mean(row['minutes_per_fold']):.1f} |")
    (RESULTS / "mvsa_finetune.md").write_text(
        "# MVSA, top blocks trained (MultimodalNetClassifier): the 5 folds of mvsa.py\n\n" + "\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'mvsa_finetune.md'}")


if __name__ == "__main__":
    main()
