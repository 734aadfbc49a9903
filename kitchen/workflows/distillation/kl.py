"""On-policy distillation's signal: the reverse KL to the teacher on the student's own tokens.

For each sampled completion token ``x_t`` the per-token reverse-KL estimate is
``log p_student(x_t) − log p_teacher(x_t)``, with the student's log-prob taken from the
sampler that drew the token (the rollouts record it) and the teacher's from
``compute_logprobs`` over the same tokens. Its negative, scaled by ``kl_penalty_coef``, is the
token's advantage: no reward, no group baseline, no centring (tinker-cookbook's
``distillation`` recipe). ``importance_sampling`` then pushes up tokens the teacher likes more
than the student does, and down the others; the mean of the estimate over the batch's sampled
tokens is ``teacher_kl``.
"""

from __future__ import annotations

from collections.abc import Sequence


def reverse_kl_advantages(
    student: Sequence[float], teacher: Sequence[float], coef: float
) -> list[float]:
    """``−coef · (log p_student − log p_teacher)`` per completion token."""
    if len(student) != len(teacher):
        raise ValueError(f"{len(student)} student log-probs for {len(teacher)} teacher ones")
    return [-coef * (float(s) - float(t)) for s, t in zip(student, teacher, strict=True)]


def completion_logprobs(prompt_logprobs: Sequence[float | None], ob_length: int) -> list[float]:
    """The completion's entries of ``compute_logprobs(ob + completion)``: one per sampled
    token (the first entry of that list, ``None``, belongs to the first prompt token)."""
    out = list(prompt_logprobs[ob_length:])
    if any(v is None for v in out):
        raise ValueError("the teacher returned no log-prob for a completion token")
    return [float(v) for v in out if v is not None]
