"""Names and choices that the library and its command line share, importable without torch (so that
``skmm --help`` is instant)."""

DEFAULT_IMAGE_MODEL = "skmm:efficientnet_lite0"
DEFAULT_TEXT_MODEL = "skmm:all-MiniLM-L6-v2"
ON_ERROR = ("raise", "zero", "nan")
# How ModalityFusion (and ``skmm fit --fusion``) fuses the modality blocks.
FUSION_METHODS = ("concat", "average", "weighted", "gated")
# A MultimodalNet trains its fusion, so it can also attend over the modalities.
NETWORK_FUSION_METHODS = FUSION_METHODS + ("attention",)
