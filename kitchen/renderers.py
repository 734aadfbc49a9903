"""Renderers: chat messages to token ids plus a loss weight per token, and back.

A renderer is the one place that knows a model's chat format, so training, evaluation and
sampling agree on it token for token. Every renderer cuts a conversation into segments
(framing such as bos, each message's header, each message's body) and tokenizes them one by
one; ``TrainOnWhat`` then picks which segments carry loss weight 1.0. Names follow
tinker-cookbook so its users recognise them.

- ``role_colon``: ``User: …`` / ``Assistant: …`` blocks separated by blank lines, each
  assistant turn ending with the eos token. Works with any tokenizer, chat template or not.
- ``hf_template``: the tokenizer's own Hugging Face chat template.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

from kitchen.errors import ConfigError
from kitchen.types import Datum, ModelInput, TensorData

Message = dict[str, Any]
Part = Literal["frame", "header", "body"]


class TrainOnWhat(StrEnum):
    """Which tokens of a conversation the loss is computed on."""

    LAST_ASSISTANT_MESSAGE = "last_assistant_message"
    ALL_ASSISTANT_MESSAGES = "all_assistant_messages"
    ALL_MESSAGES = "all_messages"
    ALL_TOKENS = "all_tokens"


class Renderer(Protocol):
    """Turns conversations into model inputs, and sampled tokens back into a message."""

    def build_supervised_example(
        self, messages: Sequence[Message], train_on_what: TrainOnWhat = ...
    ) -> tuple[ModelInput, list[float]]: ...

    def build_generation_prompt(self, messages: Sequence[Message]) -> ModelInput: ...

    def get_stop_sequences(self) -> list[str] | list[int]: ...

    def parse_response(self, tokens: Sequence[int]) -> tuple[Message, bool]: ...


@dataclass(frozen=True, slots=True)
class Segment:
    """Tokens of one piece of a rendered conversation; ``index`` is its message's position."""

    tokens: list[int]
    part: Part
    index: int = -1
    role: str = ""


def _check_messages(messages: Sequence[Message]) -> None:
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ConfigError(f"message {i} has no string 'role': each needs role and content")
        if not isinstance(message.get("content"), str):
            raise ConfigError(f"message {i} has no string 'content': each needs role and content")


def _trained(segment: Segment, how: TrainOnWhat, last_assistant: int) -> bool:
    if how is TrainOnWhat.ALL_TOKENS:
        return True
    if how is TrainOnWhat.ALL_MESSAGES:
        return segment.part != "frame"
    if segment.part != "body" or segment.role != "assistant":
        return False
    return how is TrainOnWhat.ALL_ASSISTANT_MESSAGES or segment.index == last_assistant


def _last_assistant(messages: Sequence[Message], how: TrainOnWhat) -> int:
    indices = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not indices and how in (
        TrainOnWhat.LAST_ASSISTANT_MESSAGE,
        TrainOnWhat.ALL_ASSISTANT_MESSAGES,
    ):
        raise ConfigError(f"conversation has no assistant message to train on ({how.value})")
    return indices[-1] if indices else -1


class _SegmentRenderer:
    """Shared machinery: subclasses say how a conversation splits into segments."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    def _segments(self, messages: Sequence[Message]) -> list[Segment]:
        raise NotImplementedError

    def _assistant_header(self, messages: Sequence[Message]) -> Segment:
        raise NotImplementedError

    def build_supervised_example(
        self,
        messages: Sequence[Message],
        train_on_what: TrainOnWhat = TrainOnWhat.LAST_ASSISTANT_MESSAGE,
    ) -> tuple[ModelInput, list[float]]:
        how = TrainOnWhat(train_on_what)
        _check_messages(messages)
        last = _last_assistant(messages, how)
        tokens: list[int] = []
        weights: list[float] = []
        for segment in self._segments(messages):
            tokens += segment.tokens
            weights += [1.0 if _trained(segment, how, last) else 0.0] * len(segment.tokens)
        return ModelInput.from_ints(tokens), weights

    def build_generation_prompt(self, messages: Sequence[Message]) -> ModelInput:
        _check_messages(messages)
        segments = [*self._segments(messages), self._assistant_header(messages)]
        return ModelInput.from_ints([t for s in segments for t in s.tokens])

    def get_stop_sequences(self) -> list[str] | list[int]:
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise ConfigError("tokenizer has no eos token: use a tokenizer that defines one")
        return [int(eos)]

    def _until_stop(self, tokens: Sequence[int]) -> tuple[list[int], bool]:
        eos = self.tokenizer.eos_token_id
        cut = list(tokens)
        if eos is not None and eos in cut:
            return cut[: cut.index(eos)], True
        return cut, False


class RoleColonRenderer(_SegmentRenderer):
    """``User: question`` blank line ``Assistant: answer</s>``; bos first if there is one."""

    def _header(self, index: int, role: str) -> Segment:
        text = ("\n\n" if index else "") + role.capitalize() + ":"
        return Segment(self._encode(text), "header", index, role)

    def _segments(self, messages: Sequence[Message]) -> list[Segment]:
        bos = self.tokenizer.bos_token_id
        out = [Segment([int(bos)], "frame")] if bos is not None else []
        eos = self.tokenizer.eos_token_id
        for i, m in enumerate(messages):
            body = self._encode(" " + m["content"])
            if m["role"] == "assistant" and eos is not None:
                body.append(int(eos))
            out += [self._header(i, m["role"]), Segment(body, "body", i, m["role"])]
        return out

    def _assistant_header(self, messages: Sequence[Message]) -> Segment:
        return self._header(len(messages), "assistant")

    def get_stop_sequences(self) -> list[str] | list[int]:
        if self.tokenizer.eos_token_id is None:
            return ["\n\nUser:"]  # without an eos token, the next turn's header ends a reply
        return super().get_stop_sequences()

    def parse_response(self, tokens: Sequence[int]) -> tuple[Message, bool]:
        kept, ok = self._until_stop(tokens)
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        if not ok and "\n\nUser:" in text:
            text, ok = text.split("\n\nUser:")[0], True
        return {"role": "assistant", "content": text.strip()}, ok


class HFTemplateRenderer(_SegmentRenderer):
    """The tokenizer's chat template, cut into per-message segments by rendering prefixes.

    Rendering ``messages[:i]`` and ``messages[:i+1]`` and taking the difference finds each
    message's text; this needs a template whose output for a prefix of the conversation is a
    prefix of its output for the whole (true of most; templates that rewrite earlier turns
    are refused).
    """

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError("tokenizer has no chat template: use renderer_name=role_colon")
        super().__init__(tokenizer)

    def _render(self, messages: Sequence[Message], generation: bool = False) -> str:
        if not messages and not generation:
            return ""
        return str(
            self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=generation
            )
        )

    def _delta(self, before: str, after: str) -> str:
        if not after.startswith(before):
            raise ConfigError(
                "this chat template rewrites earlier turns, so turns cannot be cut out of it: "
                "use renderer_name=role_colon"
            )
        return after[len(before) :]

    def _segments(self, messages: Sequence[Message]) -> list[Segment]:
        out: list[Segment] = []
        done = ""
        for i, m in enumerate(messages):
            head = self._render(messages[:i], generation=True) if m["role"] == "assistant" else done
            full = self._render(messages[: i + 1])
            header, body = self._delta(done, head), self._delta(head, full)
            out += [
                Segment(self._encode(header), "header", i, m["role"]),
                Segment(self._encode(body), "body", i, m["role"]),
            ]
            done = full
        return out

    def _assistant_header(self, messages: Sequence[Message]) -> Segment:
        done = self._render(messages)
        head = self._delta(done, self._render(messages, generation=True))
        return Segment(self._encode(head), "header", len(messages), "assistant")

    def parse_response(self, tokens: Sequence[int]) -> tuple[Message, bool]:
        kept, ok = self._until_stop(tokens)
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return {"role": "assistant", "content": text}, ok


RENDERERS: dict[str, Callable[[Any], Renderer]] = {
    "role_colon": RoleColonRenderer,
    "hf_template": HFTemplateRenderer,
}


def get_renderer(name: str, tokenizer: Any) -> Renderer:
    """The renderer called ``name`` for ``tokenizer``."""
    if name not in RENDERERS:
        known = ", ".join(RENDERERS)
        raise ConfigError(f"unknown renderer {name!r}: use one of {known}")
    return RENDERERS[name](tokenizer)


def datum_from_model_input_weights(
    model_input: ModelInput, weights: Sequence[float], max_length: int | None
) -> Datum:
    """Shift a rendered example into next-token targets: input[:-1] predicts tokens[1:].

    ``max_length`` counts the tokens before the shift; longer examples keep their start
    (the prompt) and lose their end.
    """
    tokens = model_input.to_ints()
    if len(weights) != len(tokens):
        raise ValueError(f"{len(weights)} weights for {len(tokens)} tokens")
    if max_length is not None:
        tokens, weights = tokens[:max_length], list(weights)[:max_length]
    if len(tokens) < 2:
        raise ConfigError("an example renders to fewer than 2 tokens: check for empty rows")
    return Datum(
        model_input=ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": TensorData.from_list(tokens[1:], "int64"),
            "weights": TensorData.from_list(list(weights)[1:], "float32"),
        },
    )


__all__ = [
    "RENDERERS",
    "HFTemplateRenderer",
    "Message",
    "Renderer",
    "RoleColonRenderer",
    "TrainOnWhat",
    "datum_from_model_input_weights",
    "get_renderer",
]
