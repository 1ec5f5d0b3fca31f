"""Measurements of attention used by the paper's figures.

All take the attention logits ``Z [..., M, M]`` (any leading run/snapshot dimensions) and the
:class:`~scansnap.data.SequenceClasses` that defines ``P(l | n)``, and return ``[..., K]`` (one
value per class) unless stated otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

import torch

from . import theory
from ._validate import as_float64_array, check_tensor
from .data import SequenceClasses


def attention(classes: SequenceClasses, Z: torch.Tensor) -> torch.Tensor:
    """``c_n`` of Eqn 5 for every class: ``[..., K, M]``."""
    _check_classes(classes)
    return theory.attention_limit(classes.probs().to(_float(Z).dtype), _float(Z),
                                  classes.query_tokens)


def distinct_entropy(classes: SequenceClasses, Z: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of ``c_n`` restricted to class ``n``'s distinct tokens, renormalized.

    The quantity of the paper's Fig 6 (PAPER.md B.4: confirmed against the authors' released
    numbers). At zero init with weights ``∝ 1..10`` it is 2.1513; ``ln 10 = 2.3026`` is uniform.
    """
    c = attention(classes, Z)
    on_distinct = _per_class(c, classes.distinct_index)  # [..., K, U]
    p = on_distinct / on_distinct.sum(-1, keepdim=True)
    return -(p * torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))).sum(-1)


def common_mass(classes: SequenceClasses, Z: torch.Tensor) -> torch.Tensor:
    """Total attention ``Σ_{l ∈ G_CT} c_{l|n}`` on the common tokens of each class (Theorem 2)."""
    return _per_class(attention(classes, Z), classes.common_index).sum(-1)


def max_weight(classes: SequenceClasses, Z: torch.Tensor) -> torch.Tensor:
    """The largest attention weight ``max_l c_{l|n}`` of each class (1 means one-hot)."""
    return attention(classes, Z).amax(-1)


def distinct_logits(classes: SequenceClasses, Z: torch.Tensor) -> torch.Tensor:
    """``z_{ψ(n), l}`` for class ``n``'s distinct tokens, least to most likely: ``[..., K, U]``."""
    _check_classes(classes)
    return _per_class(_float(Z)[..., classes.query_tokens, :], classes.distinct_index)


def common_logits(classes: SequenceClasses, Z: torch.Tensor) -> torch.Tensor:
    """``z_{ψ(n), l}`` for class ``n``'s common tokens: ``[..., K, C]``."""
    _check_classes(classes)
    return _per_class(_float(Z)[..., classes.query_tokens, :], classes.common_index)


def recall_vs_threshold(classes: SequenceClasses, Z: torch.Tensor, thresholds: Any) -> torch.Tensor:
    """Figs 11–12 (App. G): the fraction of each class's distinct tokens whose attention passes
    a threshold, averaged over classes: ``[..., len(thresholds)]``.

    The attention thresholded here is the softmax of the query row ``z_m`` over all ``M``
    tokens, which starts at ``1/M`` — an inference (PAPER.md B.5: the authors' code for these
    figures is not released), consistent with the paper's thresholds sitting near ``1/M``.
    """
    _check_classes(classes)
    levels = torch.from_numpy(as_float64_array("thresholds", thresholds, low=0.0)).reshape(-1)
    soft = torch.softmax(_float(Z)[..., classes.query_tokens, :], dim=-1)  # [..., K, M]
    on_distinct = _per_class(soft, classes.distinct_index)  # [..., K, U]
    passed = on_distinct.unsqueeze(-1) >= levels.to(soft.dtype)  # [..., K, U, L]
    return passed.to(soft.dtype).mean(dim=(-3, -2))


def entropy(weights: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy in nats of nonnegative ``weights`` normalized along ``dim``."""
    weights = check_tensor("weights", weights)
    if bool((weights < 0).any()):
        raise ValueError("weights must be nonnegative")
    total = weights.sum(dim, keepdim=True)
    if bool((total == 0).any()):
        raise ValueError(f"weights must have a positive sum along dim {dim} (an all-zero slice "
                         "has no distribution)")
    p = weights / total
    return -(p * torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))).sum(dim)


@dataclass(frozen=True)
class Assumption2:
    """Assumption 2 (weak correlations, Section 4) for one data set: ``M ≫ K²`` and
    ``FᵀF = I + E`` with ``|λ_1(E)| < 1/K`` (the largest eigenvalue in magnitude) and
    ``|λ_i(E)| ≥ 6/√M`` for all ``i`` (a constant reconstructed from the paper's garbled text).
    ``eigenvalues`` are those of ``E``, ascending."""

    M: int
    K: int
    eigenvalues: np.ndarray

    @property
    def largest(self) -> float:
        return float(np.abs(self.eigenvalues).max())

    @property
    def smallest(self) -> float:
        return float(np.abs(self.eigenvalues).min())

    @property
    def M_over_K2(self) -> float:
        return self.M / self.K**2

    @property
    def weak_correlation(self) -> bool:
        """``|λ_1(E)| < 1/K``: the classes' attention vectors are nearly orthogonal."""
        return self.largest < 1 / self.K

    @property
    def eigenvalue_floor(self) -> bool:
        """``|λ_i(E)| ≥ 6/√M`` for every ``i`` (the reconstructed constant)."""
        return self.smallest >= 6 / math.sqrt(self.M)

    def summary(self) -> dict[str, float | str]:
        """What a paragraph quotes: ``M_over_K2``, ``largest`` ``|λ(E)|``, the ``bound`` ``1/K``
        and whether the weak-correlation condition ``holds`` (the words)."""
        return {"M_over_K2": self.M_over_K2, "largest": self.largest, "bound": 1 / self.K,
                "holds": "holds" if self.weak_correlation else "does not hold"}


def assumption2(classes: SequenceClasses, Z: torch.Tensor | None = None) -> Assumption2:
    """Assumption 2 for ``classes`` with attention logits ``Z`` (``[M, M]``; default ``Z = 0``,
    the theory's initialization, where ``f_n = P(· | n)/‖P(· | n)‖``). ``E = FᵀF − I`` with
    ``F = [f_1 … f_K]`` (Section 4, Eqn 7 onwards)."""
    _check_classes(classes)
    probs = classes.probs()
    if Z is None:
        Z = torch.zeros(classes.M, classes.M, dtype=torch.float64)
    Z = check_tensor("Z", Z, shape=(classes.M, classes.M)).double()
    c = theory.attention_limit(probs, Z, classes.query_tokens)
    f = theory.normalized_attention(c)
    E = f @ f.T - torch.eye(classes.K, dtype=torch.float64)
    return Assumption2(classes.M, classes.K, torch.linalg.eigvalsh(E).numpy())


def _per_class(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Pick ``values[..., n, index[n, j]]`` → ``[..., K, J]``."""
    return torch.gather(values, -1, index.expand(*values.shape[:-2], *index.shape))


def _float(Z: Any) -> torch.Tensor:
    Z = check_tensor("Z", Z)
    if Z.ndim < 2 or Z.shape[-1] != Z.shape[-2]:
        raise ValueError(f"Z must have shape [..., M, M], got {list(Z.shape)}")
    return Z if Z.is_floating_point() else Z.double()


def _check_classes(classes: Any) -> None:
    if not isinstance(classes, SequenceClasses):
        raise TypeError(f"classes must be a SequenceClasses, got {type(classes).__name__}")
