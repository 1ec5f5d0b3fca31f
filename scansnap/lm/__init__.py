"""The authors' WikiText-2 language model (PAPER.md B.8 / Fig 7, B.9 / Fig 10), in three floors.

* :mod:`~scansnap.lm.model`: the model itself (``WikiLM``, positions, the causal mask);
* :mod:`~scansnap.lm.stats`: statistics of its attention maps (entropy, self mass, offsets, ...);
* :mod:`~scansnap.lm.train`: run sizes, the training config, ``train_lm`` and the Fig 10 sweep.

``train`` imports ``model`` and ``stats``; neither imports ``train``. Chapter 6's figures and
explorers live in :mod:`scansnap.chapters.ch6_wikitext`.
"""

from .model import (
    D_MODEL, PositionalEncoding, WikiLM, causal_attention, causal_mask, linear_cross_entropy,
)
from .stats import (
    ENTROPY_EPS, TOKEN_GROUPS, attention_entropy, key_mass, offset_profile, row_change, row_entropy,
    self_mass, token_group_shares, top_key_agreement, top_weight, uniform_attention,
    uniform_entropy,
)
from .train import (
    BLOW_UP_FACTOR, SIZE_ENV, SIZES, LMConfig, LMRun, SweepResult, chapter_size, default_device,
    default_workers, lr_sweep, train_lm, train_many,
)

__all__ = [
    "D_MODEL", "PositionalEncoding", "WikiLM", "causal_attention", "causal_mask", "linear_cross_entropy",
    "ENTROPY_EPS", "TOKEN_GROUPS", "attention_entropy", "key_mass", "offset_profile",
    "row_change", "row_entropy", "self_mass", "token_group_shares", "top_key_agreement",
    "top_weight", "uniform_attention", "uniform_entropy",
    "BLOW_UP_FACTOR", "SIZE_ENV", "SIZES", "LMConfig", "LMRun", "SweepResult", "chapter_size",
    "default_device", "default_workers", "lr_sweep", "train_lm", "train_many",
]
