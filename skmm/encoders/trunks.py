"""A backbone cut into a frozen trunk and a trainable top: what the estimators that train blocks use.

The classes are defined in ``skmm.encoders._trunks``, and stay there: saved
models (pickles, skops files) name them by that path.

- :class:`ImageSplit` cuts a CNN into units (checked on :func:`image_probe`), :class:`ImageTrunk` runs the
  units below a block on each image (through the encoder's batching and
  cache);
- :func:`text_layers` and :func:`check_text_split` find and check a text
  model's transformer layers, :class:`TextTrunk` runs those below a layer
  and :func:`run_text_layers` the others (in the trainable top), with the
  :class:`PositionBias` some encoders add to every layer (MPNet's);
- :class:`TrunkSplitError` says a backbone cannot be cut.

Examples
--------
>>> from skmm.encoders.trunks import TrunkSplitError
>>> issubclass(TrunkSplitError, ValueError)
True
"""

from ._trunks import (ImageSplit, ImageTrunk, PositionBias, TextTrunk, TrunkSplitError, check_text_split,
                      image_probe, run_text_layers, text_layers)

__all__ = ["ImageSplit", "ImageTrunk", "PositionBias", "TextTrunk", "TrunkSplitError", "check_text_split",
           "image_probe", "run_text_layers", "text_layers"]
