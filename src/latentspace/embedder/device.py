"""Where and in which precision an encoder runs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from latentspace.errors import EncoderError
from latentspace.settings import EncoderSettings

__all__ = ["DevicePlan", "plan_device"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevicePlan:
    """The torch device and the autocast dtype (``None`` = full fp32)."""

    device: torch.device
    autocast_dtype: torch.dtype | None

    def autocast(self) -> torch.autocast:
        """An autocast context for forward passes (disabled on CPU / fp32)."""
        return torch.autocast(
            device_type=self.device.type,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        )


def plan_device(settings: EncoderSettings) -> DevicePlan:
    """Pick the device (CUDA when present for ``auto``) and the autocast dtype.

    CUDA runs in bf16 where the card supports it, else fp16; CPU runs fp32 and, when
    ``torch_threads`` is set, with that many intra-op threads.

    Raises:
        EncoderError: CUDA was asked for but is not available, or the device name is bad.
    """
    wanted = settings.device
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(wanted)
    except RuntimeError as e:
        raise EncoderError(f"bad encoder device {settings.device!r}: {e}") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EncoderError(
            f"encoder device {settings.device!r} asked for, but CUDA is not available"
        )
    if device.type != "cuda":
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        return DevicePlan(device, None)
    precision = settings.precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    logger.info("encoder on %s with autocast %s", device, dtype)
    return DevicePlan(device, dtype)
