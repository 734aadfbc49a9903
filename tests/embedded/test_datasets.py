"""The embedded datasets: names, row shapes, correct answers, fixed and disjoint splits."""

from __future__ import annotations

import re

import pytest

from kitchen.embedded import generate
from kitchen.embedded.datasets import check_answer, list_embedded, load_embedded
from kitchen.errors import NotFound

SETS = ["kitchen/arith-chat", "kitchen/arith-prefs", "kitchen/arith-rl"]


def solve(question: str) -> str:
    """An oracle written independently of the generators: parse the question, compute."""
    if m := re.fullmatch(r"What is (\d+) \+ (\d+)\?", question):
        return str(int(m[1]) + int(m[2]))
    if m := re.fullmatch(r"Sort (\d+)\.", question):
        return "".join(sorted(m[1]))
    if m := re.fullmatch(r"How many letters in ([a-z]+)\?", question):
        return str(len(m[1]))
    if m := re.fullmatch(r"Largest digit of (\d+)\?", question):
        return max(m[1])
    raise AssertionError(f"unexpected question {question!r}")


def question_of(name: str, row: dict) -> str:
    messages = row["messages"] if name == "kitchen/arith-chat" else row["prompt"]
    assert messages[0]["role"] == "user"
    return str(messages[0]["content"])


def test_names() -> None:
    assert list_embedded() == SETS


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(NotFound, match="kitchen/arith-chat, kitchen/arith-prefs, kitchen/arith-rl"):
        load_embedded("kitchen/nope", "train")


def test_unknown_split_lists_known_ones() -> None:
    with pytest.raises(NotFound, match="train, test"):
        load_embedded("kitchen/arith-chat", "validation")
    with pytest.raises(NotFound, match="kitchen/arith-chat"):
        check_answer("kitchen/nope", {}, "1")


@pytest.mark.parametrize(
    ("name", "train"),
    [("kitchen/arith-chat", 2000), ("kitchen/arith-prefs", 1000), ("kitchen/arith-rl", 1000)],
)
def test_split_sizes(name: str, train: int) -> None:
    assert len(load_embedded(name, "train")) == train
    assert len(load_embedded(name, "test")) == 64


def test_chat_rows_have_correct_answers() -> None:
    for split in ("train", "test"):
        for row in load_embedded("kitchen/arith-chat", split):
            user, assistant = row["messages"]
            assert (user["role"], assistant["role"]) == ("user", "assistant")
            assert assistant["content"] == solve(user["content"])


def test_preference_pairs_are_right_against_wrong() -> None:
    for split in ("train", "test"):
        for row in load_embedded("kitchen/arith-prefs", split):
            right = solve(row["prompt"][0]["content"])
            assert row["chosen"] == [{"role": "assistant", "content": right}]
            assert row["rejected"][0]["role"] == "assistant"
            assert row["rejected"][0]["content"] != right


def test_rl_answers_are_correct() -> None:
    for row in load_embedded("kitchen/arith-rl", "train"):
        assert row["answer"] == solve(row["prompt"][0]["content"])


def test_check_answer_is_exact_match_ignoring_outer_space() -> None:
    chat = {
        "messages": [
            {"role": "user", "content": "What is 2 + 3?"},
            {"role": "assistant", "content": "5"},
        ]
    }
    assert check_answer("kitchen/arith-chat", chat, " 5\n")
    assert not check_answer("kitchen/arith-chat", chat, "55")
    prefs = {
        "prompt": [],
        "chosen": [{"role": "assistant", "content": "cba"}],
        "rejected": [{"role": "assistant", "content": "abc"}],
    }
    assert check_answer("kitchen/arith-prefs", prefs, "cba")
    assert not check_answer("kitchen/arith-prefs", prefs, "abc")
    rl = {"prompt": [], "answer": "0012"}
    assert check_answer("kitchen/arith-rl", rl, "0012")
    assert not check_answer("kitchen/arith-rl", rl, "12")


def test_every_family_is_in_the_first_rows_of_test() -> None:
    firsts = [
        question_of("kitchen/arith-chat", r).split()[0]
        for r in load_embedded("kitchen/arith-chat", "test")[:4]
    ]
    assert sorted(firsts) == ["How", "Largest", "Sort", "What"]


def test_held_out_shares_no_prompt_with_train_or_pretraining() -> None:
    held_out = {question_of(n, r) for n in SETS for r in load_embedded(n, "test")}
    assert len(held_out) == 64
    for name in SETS:
        train = {question_of(name, r) for r in load_embedded(name, "train")}
        assert not held_out & train, name
    text = "\n".join(generate.pretraining_lines())
    assert "User:" not in text and "Assistant:" not in text  # plain text, not the chat format
    for question in held_out:
        assert question not in text, question


@pytest.mark.parametrize("kind", ["chat", "prefs", "rl"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_shipped_files_match_the_generators(kind: str, split: str) -> None:
    shipped = generate.split_path(kind, split).read_text(encoding="utf-8")
    assert shipped == generate.to_jsonl(generate.build_split(kind, split))


def test_load_returns_fresh_rows() -> None:
    rows = load_embedded("kitchen/arith-rl", "test")
    rows[0]["answer"] = "changed"
    assert load_embedded("kitchen/arith-rl", "test")[0]["answer"] != "changed"
