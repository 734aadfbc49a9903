"""Renderers on the shipped tokenizer, against token ids and weights looked up by hand.

Ids of the shipped byte-level vocabulary used below: <pad> 0, <s> 1, </s> 2, <|system|> 3,
<|user|> 4, <|assistant|> 5, space 226, newline 204, '+' 16, '2' 23, '3' 24, '5' 26, '7' 28,
':' 31, '?' 36, 'A' 38, 'U' 58, 'W' 60, 'a' 70, 'e' 74, 'h' 77, 'i' 78, 'n' 83, 'r' 87,
's' 88, 't' 89.
"""

from __future__ import annotations

from typing import Any

import pytest

from kitchen.embedded import TINY_MODEL_DIR
from kitchen.errors import ConfigError
from kitchen.renderers import (
    RENDERERS,
    TrainOnWhat,
    datum_from_model_input_weights,
    get_renderer,
)
from kitchen.types import ModelInput

SP, NL = 226, 204
USER_COLON = [58, 88, 74, 87, 31]  # "User:"
ASSISTANT_COLON = [38, 88, 88, 78, 88, 89, 70, 83, 89, 31]  # "Assistant:"
WHAT_IS_2_PLUS_3 = [60, 77, 70, 89, SP, 78, 88, SP, 23, SP, 16, SP, 24, 36]  # "What is 2 + 3?"
HI = [77, 78]  # "hi"

ONE_TURN = [
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": "5"},
]
TWO_TURNS = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "7"},
]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TINY_MODEL_DIR))


def test_role_colon_one_turn(tokenizer: Any) -> None:
    renderer = get_renderer("role_colon", tokenizer)
    model_input, weights = renderer.build_supervised_example(ONE_TURN)
    prompt = [1, *USER_COLON, SP, *WHAT_IS_2_PLUS_3, NL, NL, *ASSISTANT_COLON]
    assert model_input.to_ints() == [*prompt, SP, 26, 2]
    assert weights == [0.0] * len(prompt) + [1.0, 1.0, 1.0]
    assert tokenizer.decode(model_input.to_ints()) == "<s>User: What is 2 + 3?\n\nAssistant: 5</s>"


def test_role_colon_generation_prompt_and_stop(tokenizer: Any) -> None:
    renderer = get_renderer("role_colon", tokenizer)
    prompt = renderer.build_generation_prompt(ONE_TURN[:1])
    assert prompt.to_ints() == [1, *USER_COLON, SP, *WHAT_IS_2_PLUS_3, NL, NL, *ASSISTANT_COLON]
    assert renderer.get_stop_sequences() == [2]
    assert renderer.parse_response([SP, 26, 2, 28]) == ({"role": "assistant", "content": "5"}, True)
    assert renderer.parse_response([SP, 26, 28]) == ({"role": "assistant", "content": "57"}, False)
    next_turn = [SP, 26, NL, NL, *USER_COLON]
    assert renderer.parse_response(next_turn) == ({"role": "assistant", "content": "5"}, True)


# Two turns with role_colon: <s> | User: | " hi" | \n\nAssistant: | " 5</s>" | \n\nUser: | " hi"
# | \n\nAssistant: | " 7</s>"
TWO_TURN_IDS = [
    1,
    *USER_COLON, SP, *HI,
    NL, NL, *ASSISTANT_COLON, SP, 26, 2,
    NL, NL, *USER_COLON, SP, *HI,
    NL, NL, *ASSISTANT_COLON, SP, 28, 2,
]  # fmt: skip


# Segment lengths of TWO_TURN_IDS: bos 1, "User:" 5, " hi" 3, "\n\nAssistant:" 12, " 5</s>" 3,
# "\n\nUser:" 7, " hi" 3, "\n\nAssistant:" 12, " 7</s>" 3.
@pytest.mark.parametrize(
    ("how", "expected"),
    [
        (TrainOnWhat.LAST_ASSISTANT_MESSAGE, [0] * 1 + [0] * 5 + [0] * 3 + [0] * 12 + [0] * 3
         + [0] * 7 + [0] * 3 + [0] * 12 + [1] * 3),
        (TrainOnWhat.ALL_ASSISTANT_MESSAGES, [0] * 1 + [0] * 5 + [0] * 3 + [0] * 12 + [1] * 3
         + [0] * 7 + [0] * 3 + [0] * 12 + [1] * 3),
        (TrainOnWhat.ALL_MESSAGES, [0] * 1 + [1] * 48),
        (TrainOnWhat.ALL_TOKENS, [1] * 49),
    ],
)  # fmt: skip
def test_role_colon_weights_per_train_on_what(
    tokenizer: Any, how: TrainOnWhat, expected: list[int]
) -> None:
    model_input, weights = get_renderer("role_colon", tokenizer).build_supervised_example(
        TWO_TURNS, how
    )
    assert model_input.to_ints() == TWO_TURN_IDS
    assert weights == [float(w) for w in expected]


def test_train_on_what_accepts_its_string_value(tokenizer: Any) -> None:
    renderer = get_renderer("role_colon", tokenizer)
    _, weights = renderer.build_supervised_example(TWO_TURNS, "all_tokens")  # type: ignore[arg-type]
    assert weights == [1.0] * 49


def test_hf_template_one_turn(tokenizer: Any) -> None:
    renderer = get_renderer("hf_template", tokenizer)
    model_input, weights = renderer.build_supervised_example(ONE_TURN)
    assert model_input.to_ints() == [1, 4, *WHAT_IS_2_PLUS_3, 2, 5, 26, 2]
    assert weights == [0.0] * 18 + [1.0, 1.0]
    prompt = renderer.build_generation_prompt(ONE_TURN[:1])
    assert prompt.to_ints() == [1, 4, *WHAT_IS_2_PLUS_3, 2, 5]
    assert renderer.get_stop_sequences() == [2]
    assert renderer.parse_response([26, 2, 0]) == ({"role": "assistant", "content": "5"}, True)
    assert renderer.parse_response([26, 28]) == ({"role": "assistant", "content": "57"}, False)


def test_hf_template_two_turns(tokenizer: Any) -> None:
    renderer = get_renderer("hf_template", tokenizer)
    ids = [1, 4, *HI, 2, 5, 26, 2, 4, *HI, 2, 5, 28, 2]
    model_input, last = renderer.build_supervised_example(TWO_TURNS)
    _, every = renderer.build_supervised_example(TWO_TURNS, TrainOnWhat.ALL_ASSISTANT_MESSAGES)
    _, messages = renderer.build_supervised_example(TWO_TURNS, TrainOnWhat.ALL_MESSAGES)
    assert model_input.to_ints() == ids
    assert last == [0.0] * 13 + [1.0, 1.0]
    assert every == [0.0] * 6 + [1.0, 1.0] + [0.0] * 5 + [1.0, 1.0]
    assert messages == [1.0] * 15


def test_hf_template_with_system_message(tokenizer: Any) -> None:
    renderer = get_renderer("hf_template", tokenizer)
    convo = [{"role": "system", "content": "hi"}, *ONE_TURN]
    model_input, _ = renderer.build_supervised_example(convo)
    assert model_input.to_ints() == [1, 3, *HI, 2, 4, *WHAT_IS_2_PLUS_3, 2, 5, 26, 2]


def test_unknown_renderer_lists_known_names(tokenizer: Any) -> None:
    assert sorted(RENDERERS) == ["hf_template", "role_colon"]
    with pytest.raises(ConfigError, match="use one of role_colon, hf_template"):
        get_renderer("chatml", tokenizer)


def test_hf_template_needs_a_template(tokenizer: Any) -> None:
    from transformers import AutoTokenizer

    bare = AutoTokenizer.from_pretrained(str(TINY_MODEL_DIR))
    bare.chat_template = None
    with pytest.raises(ConfigError, match="no chat template"):
        get_renderer("hf_template", bare)


def test_hf_template_refuses_a_template_that_rewrites_turns() -> None:
    from transformers import AutoTokenizer

    odd = AutoTokenizer.from_pretrained(str(TINY_MODEL_DIR))
    odd.chat_template = "{{ messages[-1]['content'] }}"
    with pytest.raises(ConfigError, match="rewrites earlier turns"):
        get_renderer("hf_template", odd).build_supervised_example(ONE_TURN)


def test_bad_conversations_are_config_errors(tokenizer: Any) -> None:
    renderer = get_renderer("role_colon", tokenizer)
    with pytest.raises(ConfigError, match="message 1 has no string 'content'"):
        renderer.build_supervised_example([ONE_TURN[0], {"role": "assistant"}])
    with pytest.raises(ConfigError, match="no assistant message"):
        renderer.build_supervised_example(ONE_TURN[:1])


def test_datum_shifts_targets_and_weights() -> None:
    datum = datum_from_model_input_weights(
        ModelInput.from_ints([1, 4, 26, 2, 7]), [0.0, 0.0, 1.0, 1.0, 0.5], None
    )
    assert datum.model_input.to_ints() == [1, 4, 26, 2]
    assert datum.loss_fn_inputs["target_tokens"].tolist() == [4, 26, 2, 7]
    assert datum.loss_fn_inputs["target_tokens"].dtype == "int64"
    assert datum.loss_fn_inputs["weights"].tolist() == [0.0, 1.0, 1.0, 0.5]
    assert datum.loss_fn_inputs["weights"].dtype == "float32"


def test_datum_truncates_to_max_length_before_the_shift() -> None:
    datum = datum_from_model_input_weights(
        ModelInput.from_ints([1, 4, 26, 2, 7]), [0.0, 0.0, 1.0, 1.0, 1.0], 3
    )
    assert datum.model_input.to_ints() == [1, 4]
    assert datum.loss_fn_inputs["target_tokens"].tolist() == [4, 26]
    assert datum.loss_fn_inputs["weights"].tolist() == [0.0, 1.0]


def test_datum_refuses_too_short_examples() -> None:
    with pytest.raises(ConfigError, match="fewer than 2 tokens"):
        datum_from_model_input_weights(ModelInput.from_ints([1, 4]), [0.0, 1.0], 1)
