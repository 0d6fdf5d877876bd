"""Tiny models and tasks shared by the ProMoT tests."""

from __future__ import annotations

import json
import string

import pytest

from tfkit.models import DecoderLM
from tfkit.promot import WordTokenizer, make_tasks, make_world


@pytest.fixture
def world_tasks_tokenizer():
    world = make_world(0)
    return world, make_tasks(world), WordTokenizer(world.vocabulary())


@pytest.fixture
def tiny_lm():
    def build(vocabulary_size: int = 40, sequence_length: int = 48) -> DecoderLM:
        return DecoderLM(vocabulary_size=vocabulary_size, sequence_length=sequence_length,
                         num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32)

    return build


def tiny_gpt2(vocabulary_size: int = 60):
    import keras_nlp

    return keras_nlp.models.GPT2Backbone(vocabulary_size=vocabulary_size, num_layers=2,
                                         num_heads=2, hidden_dim=16, intermediate_dim=32,
                                         max_sequence_length=64, dropout=0.0)


def tiny_gpt2_preset(folder) -> str:
    """A local keras-nlp preset folder (backbone + byte-level BPE tokenizer), as a user has."""
    import keras_nlp
    from keras_nlp.src.utils.preset_utils import save_to_preset

    chars = string.ascii_letters + string.digits + "|?"
    vocab = {"<|endoftext|>": 0, "Ġ": 1, "Ġa": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    tokenizer = keras_nlp.models.GPT2Tokenizer(vocabulary=vocab, merges=["Ġ a"])
    save_to_preset(tiny_gpt2(len(vocab)), str(folder))
    save_to_preset(tokenizer, str(folder), config_filename="tokenizer.json")
    assert json.loads((folder / "config.json").read_text())["class_name"] == "GPT2Backbone"
    return str(folder)
