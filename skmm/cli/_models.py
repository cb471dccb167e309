"""The models ``skmm fit`` builds and what a saved one reads: a fusion pipeline, or a stack of many members."""

from __future__ import annotations

from ._io import CLIError

# The classifiers of ``skmm fit --estimator``, as the fit builds them and its report prints them (repr): --help
# names them exactly, settings included (a test holds the three together). logreg: more iterations than
# scikit-learn's 100, so that lbfgs has room to converge on a few thousand embedding features; mlp and stack:
# seeded, so that a rerun gives the same model.
ESTIMATORS = {"logreg": "LogisticRegression(max_iter=3000)", "mlp": "TorchMLPClassifier(random_state=0)",
              "stack": "MultimodalStackingClassifier(random_state=0)"}


def build_model(args, image, text, table_columns=()):
    """The model ``skmm fit`` writes: the fusion of the image, the text and the ``table_columns`` (if any), then
    the classifier ``--help`` names; or, with ``--estimator stack``, the stack of its default members over them."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from .. import ModalityFusion, MultimodalStackingClassifier, TabularEncoder, TorchMLPClassifier

    branches = [("image", image, args.image_col), ("text", text, args.text_col)]
    if table_columns:
        branches.append(("table", TabularEncoder(), list(table_columns)))
    if args.estimator == "stack":
        return MultimodalStackingClassifier(branches, random_state=0)
    estimator = (LogisticRegression(max_iter=3000) if args.estimator == "logreg"
                 else TorchMLPClassifier(device=args.device, random_state=0))
    return Pipeline([("fuse", ModalityFusion(branches, method=args.fusion)), ("clf", estimator)])


def baseline_classifier(model):
    """The classifier of the per-modality baselines: the pipeline's own; a stack's baselines are logreg's."""
    from sklearn.linear_model import LogisticRegression

    return model.named_steps["clf"] if hasattr(model, "named_steps") else LogisticRegression(max_iter=3000)


def model_settings(args, model):
    """The report's fusion and estimator lines."""
    if hasattr(model, "named_steps"):
        return {"fusion": args.fusion, "estimator": repr(model.named_steps["clf"])}
    return {"fusion": "every method (the stack's members)", "estimator": ESTIMATORS["stack"]}


def saved_model_parts(model, path):
    """What a saved model reads: ``(modalities, encoders)``.

    ``modalities``: its ``(name, transformer, column)`` triples, with a
    fitted skmm encoder for each image and text column; ``encoders``: every
    fitted skmm encoder in the model (a stack's members' too), for the
    command line's runtime settings. No encoder meets an unreadable value:
    the commands make each one missing, or stop, before the model reads.
    """
    from ..estimators import MultimodalStackingClassifier
    from ..fusion import ModalityFusion

    if isinstance(model, MultimodalStackingClassifier) and hasattr(model, "members_"):
        encoders = _fitted_encoders(model)
        modalities = [(name, _fitted_like(transformer, column, encoders), column)
                      for name, transformer, column in model.modalities]
        return modalities, encoders
    fusion = model.steps[0][1] if hasattr(model, "steps") else None
    if not isinstance(fusion, ModalityFusion) or not hasattr(model, "predict_proba"):
        raise CLIError(f"{path} is not a model written by 'skmm fit' (a pipeline of a ModalityFusion and a "
                       "classifier, or a MultimodalStackingClassifier)")
    return list(fusion.transformers_), [encoder for _, encoder, _ in fusion.transformers_]


def _fitted_encoders(model):
    """Every fitted skmm encoder reachable from ``model``'s fitted attributes."""
    from sklearn.base import BaseEstimator

    from ..encoders import ImageEncoder, TabularEncoder, TextEncoder

    found, seen = [], set()

    def visit(value):
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, (ImageEncoder, TextEncoder, TabularEncoder)):
            if hasattr(value, "n_features_in_"):
                found.append(value)
            return
        if isinstance(value, BaseEstimator):
            children = vars(value).values()
        elif isinstance(value, dict):
            children = value.values()
        elif isinstance(value, (list, tuple)):
            children = value
        else:
            return
        for child in children:
            visit(child)

    visit(model)
    return found


def _fitted_like(transformer, column, encoders):
    """The first fitted encoder of ``transformer``'s kind and settings that reads ``column`` (else itself)."""
    wanted = [column] if isinstance(column, str) else list(column)
    for encoder in encoders:
        if (type(encoder) is type(transformer)
                and list(getattr(encoder, "feature_names_in_", [])) == wanted
                and repr(encoder.get_params()) == repr(transformer.get_params())):
            return encoder
    return transformer
