"""Device and precision choices, and batches that shrink on CUDA out-of-memory.

Precision by device: float32 on CPU; on CUDA bfloat16 where the GPU has bf16 tensor cores
(compute capability 8.0+), else float16 — a V100 (7.0) has no bf16 tensor cores and no
FlashAttention 2, so it gets fp16 with PyTorch's sdpa attention.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tving_resources.errors import ConfigError, ModelError

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger("tving.gpu")
_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16", "bfloat16": "bfloat16",
           "bf16": "bfloat16"}  # fmt: skip


def torch_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but PyTorch sees no CUDA GPU; use device=cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    return device


def torch_dtype(device: str, dtype: str = "auto") -> Any:
    import torch

    if dtype != "auto":
        if dtype not in _DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}; use auto, float32, float16 or bfloat16")
        return getattr(torch, _DTYPES[dtype])
    if not device.startswith("cuda"):
        return torch.float32
    major, _ = torch.cuda.get_device_capability(torch.device(device))
    return torch.bfloat16 if major >= 8 and torch.cuda.is_bf16_supported() else torch.float16


def is_out_of_memory(exc: BaseException) -> bool:
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _free_cuda_cache() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def map_in_batches(
    items: Sequence[T],
    batch_size: int,
    run: Callable[[Sequence[T]], Sequence[R]],
    what: str,
    on_batch_size: Callable[[int], None] | None = None,
) -> list[R]:
    """``run`` over ``items`` in batches; on CUDA out-of-memory halve the batch and retry the same
    items, down to batch size 1, then fail with a message that says what to change."""
    results: list[R] = []
    size = max(1, batch_size)
    start = 0
    while start < len(items):
        batch = items[start : start + size]
        try:
            out = run(batch)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            _free_cuda_cache()
            if size == 1:
                raise ModelError(
                    f"{what}: out of GPU memory even with batch size 1; use a smaller model, fewer "
                    f"frames per scene, float16, or a GPU with more memory"
                ) from exc
            size = max(1, size // 2)
            log.warning("%s: CUDA out of memory; retrying with batch size %d", what, size)
            if on_batch_size:
                on_batch_size(size)
            continue
        results.extend(out)
        start += len(batch)
    return results
