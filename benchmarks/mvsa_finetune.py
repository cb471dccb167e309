"""MVSA with the encoders' top blocks trained: MultimodalNetClassifier on the same 5 folds as mvsa.py.

The offline EfficientNet-Lite0 and all-MiniLM-L6-v2, each cut below its top ``train_blocks`` blocks; the
frozen trunks run once per item (disk cache, shared by every configuration and fold), the top blocks train
with the fusion and the head. Reports accuracy, weighted F1 (what the papers report) and macro-F1, and
minutes per fold on this machine.

    python benchmarks/mvsa_finetune.py                        # every configuration below, 5 folds each
    python benchmarks/mvsa_finetune.py --only "blocks=1" --folds 1
    python benchmarks/mvsa_finetune.py --only "=concat, blocks=1" --text-model skmm:all-MiniLM-L6-v2 \
        --text-model skmm:all-mpnet-base-v2 --set '{"train_blocks": {"image": 1, "text": 1, "text2": 0}}'

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
from _common import (METRICS, RESULTS, add_mvsa_arguments, append_to_history, encoder_modalities,  # noqa: E402
                     mvsa_present, scores)

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
    # every block of both backbones (a text model's token embeddings stay frozen): meant for a GPU
    "concat, blocks=all": dict(fusion="concat", train_blocks="all"),
}


def network(params, cache, device, random_state=0, columns=("image", "text"), models=None):
    """The network of ``params`` on ``columns``; with ``seeds=n`` among them, a soft vote of n networks.

    ``models`` maps a column to its backbones (the encoders' ``model``), a modality each (named column,
    column2...); the encoder's default where a column has none."""
    from sklearn.ensemble import VotingClassifier

    from skmm import ImageEncoder, MultimodalNetClassifier, TextEncoder

    encoders, models = {"image": ImageEncoder, "text": TextEncoder}, models or {}
    modalities = [modality for column in columns
                  for modality in encoder_modalities(column, encoders[column], models.get(column), device, cache)]
    params = dict(params)
    seeds = params.pop("seeds", 1)
    networks = [MultimodalNetClassifier(modalities, random_state=random_state + seed, device=device, **params)
                for seed in range(seeds)]
    if seeds == 1:
        return networks[0]
    return VotingClassifier([(f"seed{seed}", net) for seed, net in enumerate(networks)], voting="soft")


def _networks(model):
    """The fitted networks of ``model``: itself, or those of a vote."""
    return getattr(model, "estimators_", [model])


def _machine(device):
    """The GPU's name when the networks train on one, else the CPU's (results from both sit in one table)."""
    import platform

    import torch

    if torch.cuda.is_available() and (device == "auto" or str(device).startswith("cuda")):  # skmm's "auto" too
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def _run(name, params, X, y, folds, args):
    """One configuration on every fold: its scores, minutes and epochs, printed per fold, as a results row."""
    per_fold, minutes, epochs, members, kept = {m: [] for m in METRICS}, [], [], [], []
    for i, (train, test) in enumerate(folds, start=1):
        start = time.perf_counter()
        model = network(params, args.cache, args.device, columns=args.columns, models=args.models)
        model.fit(X.iloc[train], y[train])
        predicted = model.predict(X.iloc[test])
        minutes.append((time.perf_counter() - start) / 60)
        nets = _networks(model)
        trained, best = [net.n_iter_ for net in nets], [net.best_epoch_ for net in nets]
        epochs.append(trained if len(trained) > 1 else trained[0])
        for metric, value in scores(y[test], predicted).items():
            per_fold[metric].append(value)
        kept.append([bool(net.blocks_trained_) for net in nets])
        if len(nets) > 1:  # a vote: each network alone (they were fitted on the vote's encoded labels)
            members.append([float(np.mean(net.predict(X.iloc[test]) == model.le_.transform(y[test])))
                            for net in nets])
            print(f"{name} fold {i}: the networks alone {np.round(members[-1], 4).tolist()}", flush=True)
        print(f"{name} fold {i}: acc {per_fold['accuracy'][-1]:.3f} weighted-F1 {per_fold['f1_weighted'][-1]:.3f} "
              f"macro-F1 {per_fold['f1_macro'][-1]:.3f} ({minutes[-1]:.1f} min, {epochs[-1]} epochs, best "
              f"{best if len(best) > 1 else best[0]})", flush=True)
    row = {"configuration": name, "params": params, "machine": _machine(args.device), "folds": len(folds),
           "minutes_per_fold": minutes, "epochs": epochs, **{m: float(np.mean(v)) for m, v in per_fold.items()},
           **{f"{m}_std": float(np.std(v)) for m, v in per_fold.items()}, "per_fold": per_fold,
           "blocks_kept": kept, **({"networks_accuracy": members} if members else {})}
    print(f"== {name}: acc {row['accuracy']:.3f} weighted-F1 {row['f1_weighted']:.3f} macro-F1 "
          f"{row['f1_macro']:.3f}, {np.mean(minutes):.1f} min per fold", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_mvsa_arguments(parser)
    parser.add_argument("--only", default=None,
                        help="run the configurations whose name contains this text (=NAME: that one only)")
    parser.add_argument("--folds", type=int, default=5, help="how many of the 5 folds to run")
    parser.add_argument("--columns", default="image,text", type=lambda text: tuple(text.split(",")),
                        help="the modalities the networks read: image,text (default), image or text")
    parser.add_argument("--text-model", action="append", default=None,
                        help="a text backbone (e.g. skmm:all-mpnet-base-v2); repeat it for a text modality each")
    parser.add_argument("--image-model", action="append", default=None,
                        help="an image backbone (e.g. skmm:efficientnet_lite2); repeat it for an image modality each")
    parser.add_argument("--set", default=None, help="extra parameters as JSON, e.g. '{\"max_epochs\": 10}'")
    args = parser.parse_args()
    args.models = {column: models for column, models in (("image", args.image_model), ("text", args.text_model))
                   if models}
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
        if args.columns != ("image", "text"):
            name = f"{name} [{' + '.join(args.columns)} only]"
        if args.models:
            name = f"{name} [{', '.join(model for models in args.models.values() for model in models)}]"
        rows.append(_run(name, {**params, **extra}, X, y, folds, args))
    write_markdown(append_to_history(RESULTS / "mvsa_finetune.json",
                                     {"date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}))


def write_markdown(history):
    """mvsa_finetune.md: the latest row of each configuration and parameters in ``history``."""
    latest = {}
    for run in history:
        for row in run["rows"]:
            latest[(row["configuration"], json.dumps(row["params"], sort_keys=True))] = row
    lines = ["| configuration | folds | accuracy | weighted F1 | macro-F1 | min / fold |", "|---|---|---|---|---|---|"]
    for row in latest.values():
        lines.append(f"| {row['configuration']} {json.dumps(row['params'])} | {row['folds']} | " + " | ".join(
            f"{100 * row[m]:.1f} ± {100 * row[m + '_std']:.1f}" for m in METRICS)
            + f" | {np.mean(row['minutes_per_fold']):.1f}"
            + (f" on {row['machine']}" if "machine" in row else "") + " |")
    (RESULTS / "mvsa_finetune.md").write_text(
        "# MVSA, top blocks trained (MultimodalNetClassifier): the 5 folds of mvsa.py\n\n" + "\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'mvsa_finetune.md'}")


if __name__ == "__main__":
    main()
