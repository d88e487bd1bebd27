from __future__ import annotations

import numpy as np
import pytest
import torch

from latentspace.embedder import create_encoder
from latentspace.embedder.device import plan_device
from latentspace.errors import EncoderError
from latentspace.settings import EncoderSettings


def test_cpu_runs_fp32() -> None:
    plan = plan_device(EncoderSettings(device="cpu"))
    assert plan.device.type == "cpu"
    assert plan.autocast_dtype is None


def test_auto_picks_what_is_there() -> None:
    plan = plan_device(EncoderSettings(device="auto"))
    assert plan.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(EncoderError, match="CUDA is not available"):
        plan_device(EncoderSettings(device="cuda"))


def test_bad_device_name() -> None:
    with pytest.raises(EncoderError, match="bad encoder device"):
        plan_device(EncoderSettings(device="quantum"))


@pytest.mark.gpu
def test_cuda_encode_matches_cpu() -> None:
    cpu = create_encoder("tiny-shapes", EncoderSettings(device="cpu"))
    gpu = create_encoder("tiny-shapes", EncoderSettings(device="cuda"))
    texts = ["a red circle", "a blue star"]
    np.testing.assert_allclose(gpu.encode_text(texts), cpu.encode_text(texts), atol=2e-2)
    assert gpu.fingerprint == cpu.fingerprint
