"""Argument checks shared by every public function.

Wrong types raise ``TypeError``; out-of-range, non-finite or unknown values raise ``ValueError``.
Every message names the parameter and what is accepted, so a reader never meets a NaN plot or a
silent clamp instead.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer in {_range_text(low, high)}, got {value}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """A finite real number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if not _is_real(value):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        interval = _range_text(low, high, low_open=low_open)
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {choices}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def as_float_list(name: str, value: Any, **bounds: Any) -> list[float]:
    """A scalar or a non-empty sequence of finite reals, each checked by :func:`check_float`."""
    items = _as_items(name, value)
    return [check_float(f"{name}[{i}]" if len(items) > 1 else name, v, **bounds)
            for i, v in enumerate(items)]


def as_int_list(name: str, value: Any, **bounds: Any) -> list[int]:
    """A scalar or a non-empty sequence of integers, each checked by :func:`check_int`."""
    items = _as_items(name, value)
    return [check_int(f"{name}[{i}]" if len(items) > 1 else name, v, **bounds)
            for i, v in enumerate(items)]


def check_tensor(
    name: str,
    value: Any,
    *,
    ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
    finite: bool = True,
    floating: bool = False,
) -> torch.Tensor:
    """A torch tensor (numpy arrays are converted) with the given rank/shape and finite entries;
    with ``floating``, of a floating-point dtype."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.is_complex():
        raise TypeError(f"{name} must be a real tensor, got dtype {value.dtype}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(value.shape)}")
    if shape is not None:
        ok = value.ndim == len(shape) and all(
            want is None or want == got for want, got in zip(shape, value.shape)
        )
        if not ok:
            wanted = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
            raise ValueError(f"{name} must have shape {wanted}, got {list(value.shape)}")
    if finite and value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} must contain only finite values (no NaN or inf)")
    return value


def as_float64_array(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> np.ndarray:
    """A real scalar or array (number, sequence, numpy array or torch tensor) as float64 numpy,
    finite and in ``[low, high]`` (``(low, high]`` with ``low_open``). Booleans, complex numbers,
    strings and ``None`` are a ``TypeError``, not silently converted."""
    if isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value):
        raise TypeError(f"{name} must contain real numbers, not booleans")
    array = _as_numpy(name, value, "iuf", "a real number or an array of them").astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    if low is not None and np.any(array <= low if low_open else array < low):
        relation = ">" if low_open else ">="
        raise ValueError(f"{name} must be {relation} {low}, got minimum {array.min()}")
    if high is not None and np.any(array > high):
        raise ValueError(f"{name} must be <= {high}, got maximum {array.max()}")
    return array


def as_int64_array(name: str, value: Any, *, low: int = 0, high: int | None = None) -> np.ndarray:
    """An integer scalar or array (not bool, not float) as int64 numpy in ``[low, high]``."""
    array = _as_numpy(name, value, "iu", "an integer or an array of integers").astype(np.int64)
    if np.any(array < low) or (high is not None and np.any(array > high)):
        upper = "" if high is None else f" and <= {high}"
        raise ValueError(f"{name} must be an integer >= {low}{upper}, "
                         f"got values in [{array.min()}, {array.max()}]")
    return array


def as_token_ids(name: str, value: Any, M: int, *, ndim: int | None = None) -> torch.Tensor:
    """Token ids in ``[0, M-1]`` (an integer, a sequence of them or an integer array/tensor) as a
    non-empty int64 CPU tensor of rank ``ndim``."""
    ids = _as_numpy(name, value, "iu", "an integer token id or an array of them")
    if ndim is not None and ids.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {list(ids.shape)}")
    if ids.size == 0:
        raise ValueError(f"{name} must not be empty")
    if ids.min() < 0 or ids.max() >= M:
        what = "be an integer" if ids.ndim == 0 else "hold token ids"
        raise ValueError(f"{name} must {what} in [0, {M - 1}], got values in "
                         f"[{ids.min()}, {ids.max()}]")
    return torch.from_numpy(ids.astype(np.int64))


def _as_numpy(name: str, value: Any, kinds: str, what: str) -> np.ndarray:
    """A number, a (nested) sequence, a numpy array or a torch tensor as numpy whose dtype kind is
    in ``kinds`` (``"iuf"``: integer or float), else a ``TypeError`` saying ``name`` must be
    ``what``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except ValueError:  # a ragged sequence
        raise TypeError(f"{name} must be {what}, got a ragged {type(value).__name__}") from None
    if array.dtype.kind not in kinds:
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} of dtype {array.dtype}")
    return array


def _as_items(name: str, value: Any) -> list[Any]:
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a number or a sequence of numbers, got str")
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, Iterable):
        items = list(value)
        if not items:
            raise ValueError(f"{name} must not be empty")
        return items
    return [value]


def _range_text(low: float | None, high: float | None, *, low_open: bool = False) -> str:
    left = "(" if low_open or low is None else "["
    lo = "-inf" if low is None else f"{low}"
    hi = "inf)" if high is None else f"{high}]"
    return f"{left}{lo}, {hi}"


@functools.lru_cache(maxsize=None)  # fixed per machine; checked on every sampling call
def memory_budget(device: torch.device | str | None = None) -> int | None:
    """Bytes a single call may plan to allocate on ``device``: the device's total memory.

    The total, not the currently free memory: a request larger than the whole machine (or GPU)
    can never succeed, while "free" moves with other processes and would make the same call pass
    or fail from one run to the next. ``None`` where the platform does not report it (no check).
    """
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # not POSIX: sysconf is unavailable
        return None


def check_memory(parts: Mapping[str, float], device: torch.device | str | None = None,
                 *, context: str = "") -> None:
    """Raise ``ValueError`` before allocating when the tensors a call would create exceed
    :func:`memory_budget` — instead of a long Python loop or torch's allocator message.

    ``parts`` maps the parameter(s) behind each tensor to its estimated bytes; the message
    names the largest, the total and the budget.
    """
    budget = memory_budget(device)
    total = float(sum(parts.values()))
    if budget is not None and total > budget:
        culprit = max(parts, key=parts.__getitem__)
        share = f" ({_gib(parts[culprit])} for {culprit})" if len(parts) > 1 else ""
        raise ValueError(f"{culprit} too large{context}: this call would need about {_gib(total)} "
                         f"of memory{share}, more than the {_gib(budget)} of the "
                         f"{torch.device('cpu' if device is None else device).type} memory here; "
                         "use smaller values")


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


SEED_MAX = 2**63 - 1
"""The largest seed: ``torch.Generator.manual_seed`` takes up to ``2**64 − 1``, but seeds are
also stored in int64 tensors (``Run.seeds``)."""


def check_seed(name: str, value: Any) -> int:
    """A seed: an integer in ``[0, SEED_MAX]``."""
    return check_int(name, value, low=0, high=SEED_MAX)


def check_dtype(value: Any, allowed: Sequence[torch.dtype] = (torch.float32, torch.float64)
                ) -> torch.dtype:
    """A floating ``torch.dtype`` (or its name, ``"float64"``) among ``allowed``."""
    names = tuple(str(d).removeprefix("torch.") for d in allowed)
    if isinstance(value, str):
        if value.removeprefix("torch.") not in names:
            raise ValueError(f"dtype must be one of {names}, got {value!r}")
        return getattr(torch, value.removeprefix("torch."))
    if not isinstance(value, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.float64, got "
                        f"{type(value).__name__}")
    if value not in allowed:
        raise ValueError(f"dtype must be one of {names}, got {value}")
    return value


def check_device(value: Any) -> torch.device:
    """``None`` (the CPU), ``"cpu"``, ``"cuda"`` / ``"cuda:N"`` or a ``torch.device``, and
    available here."""
    if value is None:
        return torch.device("cpu")
    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"device must be a str, a torch.device or None, got {type(value).__name__}")
    try:
        device = torch.device(value)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda' (optionally 'cuda:N'), got {value!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device must be 'cpu' here: CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device must be one of cuda:0..cuda:{torch.cuda.device_count() - 1}, "
                             f"got {value!r}")
    return device


def check_out_dir(name: str, path: Any, *, force: bool | None = None) -> Path:
    """An output folder that can be written: an existing folder, or a path whose nearest existing
    parent is a writable folder (nothing is created here, so a later error leaves no trace).

    With ``force=False`` an existing folder that already holds files is refused (no silent
    overwrite of, say, a student's notebooks); ``force=None`` skips that check.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a folder path (str or os.PathLike), got {type(path).__name__}")
    out = Path(path)
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{name} must be a folder, but {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {out} cannot be written: {existing} is not writable")
    if force is False and out.is_dir() and any(out.iterdir()):
        raise ValueError(f"{name} {out} already holds files; choose an empty or new folder, or "
                         "pass --force (force=True in Python) to overwrite them")
    return out
