"""Shared fixtures: tiny random models (fast) built offline."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

# The device the tests run their models on: the CPU here; SKMM_TEST_DEVICE=cuda runs the same suite on a GPU.
DEVICE = os.environ.get("SKMM_TEST_DEVICE", "cpu")
# Autocast (bf16/fp16) on a GPU changes embeddings in the third digit; fp32 on the CPU agrees to 1e-5.
ATOL = 1e-5 if DEVICE == "cpu" else 5e-2
TINY_IMAGE = dict(model="timm:test_efficientnet", weights=None, device=DEVICE)
# SKMM_TEST_DECODE=device: the image tests decode JPEGs with torchvision on the model's device; on the CPU that
# is the code path nvJPEG takes on CUDA, with libjpeg-turbo (unset: the encoder's default, "auto").
if os.environ.get("SKMM_TEST_DECODE"):
    TINY_IMAGE["decode"] = os.environ["SKMM_TEST_DECODE"]
# SKMM_TEST_PRECISION=bf16: the tiny encoders embed in bf16 (on a CPU with bf16 instructions), as autocast
# does on a GPU: a CPU-only run meets the tests whose margins bf16 embeddings eat.
PRECISION = os.environ.get("SKMM_TEST_PRECISION")
if PRECISION:
    TINY_IMAGE["precision"] = PRECISION


def _tiny_vocabulary():
    """Special tokens, the generated datasets' words, and letters for WordPiece to fall back on."""
    from skmm import datasets

    words = {w for group in datasets._CLASS_WORDS for w in group} | set(datasets._NEUTRAL_WORDS)
    words |= {"a", "photo", "of", "cat", "kitten", "truck", "hello", "word", "short", "text", "fine", "also"}
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,!?'#@-")
    return (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words) + letters
            + ["##" + letter for letter in letters])


def _tiny_sentence_transformer(root, architecture="bert", layers=1):
    """A random ``layers``-layer, 128-wide BERT (or MPNet) with a small WordPiece vocabulary, as a
    sentence-transformers folder under ``root``: built from scratch, offline, with no pretrained file."""
    from sentence_transformers import SentenceTransformer
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast, MPNetConfig, MPNetModel

    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Pooling, Transformer

    (root / "model").mkdir()
    vocabulary = root / "model" / "vocab.txt"
    vocabulary.write_text("\n".join(_tiny_vocabulary()) + "\n")
    tokenizer = BertTokenizerFast(
        tokenizer_object=BertWordPieceTokenizer(str(vocabulary), lowercase=True)._tokenizer,
        unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    assert tokenizer.tokenize("fire city") == ["fire", "city"]
    config_class, model_class = {"bert": (BertConfig, BertModel), "mpnet": (MPNetConfig, MPNetModel)}[architecture]
    config = config_class(vocab_size=tokenizer.vocab_size, hidden_size=128, num_hidden_layers=layers,
                          num_attention_heads=2, intermediate_size=128, max_position_embeddings=128,
                          pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model_class(config).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    transformer = Transformer(str(root / "model"), max_seq_length=64)
    width = (getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension)()
    pooling = Pooling(width, pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(root / "st"))
    return str(root / "st")


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory):
    """A 1-layer, 128-wide random BERT with a small WordPiece vocabulary, as a sentence-transformers folder."""
    return _tiny_sentence_transformer(tmp_path_factory.mktemp("tiny_text"))


@pytest.fixture(scope="session")
def tiny_mpnet_model(tmp_path_factory):
    """The same as a 2-layer MPNet, whose encoder adds a relative position bias to every layer's attention."""
    return _tiny_sentence_transformer(tmp_path_factory.mktemp("tiny_mpnet"), "mpnet", layers=2)


@pytest.fixture
def tiny_image_params():
    return dict(TINY_IMAGE)


@pytest.fixture
def tiny_text_params(tiny_text_model):
    return dict(model=tiny_text_model, device=DEVICE, **({"precision": PRECISION} if PRECISION else {}))


@pytest.fixture
def embedded_items(monkeypatch):
    """The items that went through a model (not served by a cache), in order."""
    import skmm.encoders._base as encoder_base

    items = []
    original = encoder_base.run_batched

    def counting(batch_items, **kwargs):
        items.extend(batch_items)
        return original(batch_items, **kwargs)

    monkeypatch.setattr(encoder_base, "run_batched", counting)
    return items


@pytest.fixture(autouse=True, scope="session")
def _exports_in_a_temporary_folder(tmp_path_factory):
    """Compiled-backend exports go to a folder of this test session, not to the user's cache."""
    folder = tmp_path_factory.mktemp("exports")
    previous = os.environ.get("SKMM_EXPORT_DIR")
    os.environ["SKMM_EXPORT_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("SKMM_EXPORT_DIR", None)
    else:
        os.environ["SKMM_EXPORT_DIR"] = previous


@pytest.fixture(autouse=True, scope="session")
def _openvino_default_precision():
    """``SKMM_TEST_OPENVINO_DEFAULT=bf16``: the suite runs as on a CPU whose OpenVINO defaults to bf16.

    A model compiled without an explicit ``INFERENCE_PRECISION_HINT`` gets bf16, as a runtime on an
    AVX512-BF16 or AMX CPU gives it by default; where this CPU cannot run bf16 (the runtime would quietly
    compute fp32, hiding the omission), such a compile fails instead. Either way, a compile path that leaves
    the precision to the runtime fails the suite on any CPU.
    """
    if os.environ.get("SKMM_TEST_OPENVINO_DEFAULT") != "bf16":
        yield
        return
    import openvino

    original = openvino.Core.compile_model
    bf16_cpu = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")

    def compile_model(self, model, device_name=None, config=None, **kwargs):
        config = dict(config or {})
        if "INFERENCE_PRECISION_HINT" not in config:
            if not bf16_cpu:
                raise AssertionError("compiled without an explicit INFERENCE_PRECISION_HINT: a bf16 CPU "
                                     "would run this model in bf16")
            config["INFERENCE_PRECISION_HINT"] = "bf16"
        return original(self, model, device_name, config, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(openvino.Core, "compile_model", compile_model)
        yield


@pytest.fixture(autouse=True)
def _fresh_memory_cache():
    """Each test starts with an empty in-process embedding cache."""
    from skmm import clear_cache

    clear_cache("memory")
    yield


def random_images(n, size=32, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 256, size=(size, size, 3), dtype=np.uint8) for _ in range(n)]
