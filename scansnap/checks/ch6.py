"""Coursework checks for Chapter 6 (WikiText): the authors' causal attention, self included."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .. import lm
from . import Case, CheckFailed, call_student, compare, describe, grade_failure


def _diagnose(student: Callable[..., Any]) -> None:
    """Run one revealing input and name the usual mistakes before the element-wise comparison."""
    gen = torch.Generator().manual_seed(11)
    q = torch.randn(1, 6, 4, generator=gen, dtype=torch.float64)
    k = torch.randn(1, 6, 4, generator=gen, dtype=torch.float64)
    got = call_student("causal_attention", student, (q, k), label="q, k of shape [1, 6, 4]")
    if not isinstance(got, torch.Tensor) or got.dtype != torch.float64:
        raise CheckFailed(f"causal_attention: for float64 q, k you returned {describe(got)}; "
                          "return the weights as a float64 torch.Tensor")
    if tuple(got.shape) != (1, 6, 6):
        raise CheckFailed(f"causal_attention: for q, k of shape [1, 6, 4] the weights must have "
                          f"shape [1, 6, 6] (one row per query, one column per key), got "
                          f"{list(got.shape)}")
    got = got.detach()
    ref = lm.causal_attention(q, k)
    future = torch.ones(6, 6, dtype=torch.bool).triu(1)
    if got[0][future].abs().max() > 1e-9:
        i, j = (int(x) for x in torch.nonzero(got[0].abs() * future > 1e-9)[0])
        raise CheckFailed(f"causal_attention: query {i} puts weight {got[0, i, j]:.3g} on key {j}, "
                          "a later position. Mask the keys after the query with -inf *before* "
                          "the softmax (torch.triu(..., diagonal=1)).")
    diagonal = torch.nan_to_num(got[0, 1:, 1:].diagonal(), nan=0.0)
    if diagonal.abs().max() < 1e-12 and ref[0, 1:, 1:].diagonal().abs().min() > 1e-6:
        raise CheckFailed("causal_attention: every query gives itself zero weight. The authors' "
                          "mask (triu with diagonal=1) lets a position attend to itself; only "
                          "the theory's query is excluded. Mask strictly above the diagonal.")
    if torch.allclose(got.sum(-2), torch.ones(1, 6, dtype=torch.float64)) and not torch.allclose(
            got.sum(-1), torch.ones(1, 6, dtype=torch.float64)):
        raise CheckFailed("causal_attention: your columns sum to 1, not your rows. Take the "
                          "softmax over the keys (the last axis, dim=-1).")
    if not torch.isfinite(got).all():
        raise CheckFailed("causal_attention: your weights contain NaN or inf. A row whose every "
                          "score is -inf gives NaN, and exp of large scores overflows: use "
                          "torch.softmax on the masked scores.")
    if not torch.allclose(got.sum(-1), torch.ones(1, 6, dtype=torch.float64), atol=1e-9):
        raise CheckFailed(f"causal_attention: each row (one query) must sum to 1, yours sum to "
                          f"{[round(float(x), 4) for x in got.sum(-1)[0]]}. Take the softmax over "
                          "the keys (dim=-1) after masking.")
    unscaled = torch.softmax(q @ k.transpose(-2, -1) + lm.causal_mask(6).double(), dim=-1)
    if torch.allclose(got, unscaled, atol=1e-9) and not torch.allclose(got, ref, atol=1e-9):
        raise CheckFailed("causal_attention: your weights are softmax(q kᵀ + mask): the scores "
                          f"must be divided by √d (here √4 = {math.sqrt(4):g}) before the softmax.")


def check_causal_attention(student: Callable[..., Any], *, points: float | None = None,
                           part: str | None = None) -> Any:
    """``student(q, k)`` with ``q, k [B, L, d]`` must return the attention weights ``[B, L, L]``
    of the authors' model: ``softmax(q kᵀ/√d + mask)`` with query ``i`` seeing keys ``0..i``,
    itself included (:func:`scansnap.lm.causal_attention`). One revealing input first names the
    usual mistakes (no mask, self excluded, softmax over the queries, no √d scaling, NaN).
    ``points``/``part``: see :func:`scansnap.checks.compare`."""
    if not callable(student):
        raise CheckFailed(f"causal_attention: expected a function, got {describe(student)}")
    try:
        _diagnose(student)
    except CheckFailed as failure:
        if points is None:
            raise
        return grade_failure("causal_attention", failure, points)
    gen = torch.Generator().manual_seed(6)

    def rand(B: int, L: int, d: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.randn(B, L, d, generator=gen, dtype=torch.float64) * scale,
                torch.randn(B, L, d, generator=gen, dtype=torch.float64) * scale)

    same = torch.randn(1, 5, 3, generator=gen, dtype=torch.float64)
    cases = [Case("random B=2, L=7, d=4", rand(2, 7, 4)),
             Case("L=1: a single position attends only to itself", rand(3, 1, 5)),
             Case("d=1", rand(2, 5, 1)),
             Case("q = k (each query matches itself best)", (same, same.clone())),
             Case("zero queries: uniform over the visible keys", (torch.zeros(2, 6, 3,
                                                                            dtype=torch.float64),
                                                                rand(2, 6, 3)[1])),
             Case("large scores (overflow-safe softmax)", rand(2, 8, 4, scale=40.0)),
             Case("35 positions, d=200 (the chapter's size)", rand(1, 35, 200))]
    return compare("causal_attention", student, lm.causal_attention, cases, rtol=1e-7, atol=1e-10,
                   points=points, part=part)
