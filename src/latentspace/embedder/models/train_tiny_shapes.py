"""Train the bundled ``tiny-shapes`` CLIP from scratch on generated coloured shapes.

    python -m latentspace.embedder.models.train_tiny_shapes [--out DIR] [--steps N]

Writes ``open_clip_config.json``, ``open_clip_model.safetensors`` (fp16) and ``MODEL_CARD.md``
(with metrics measured on held-out draws) into ``--out`` (default: the bundled model folder).
The default run reproduces the shipped weights in about ten minutes on two CPU cores; the
loss is open_clip's own :class:`open_clip.loss.ClipLoss`. The second bundled model,
``tiny-shapes-b`` (another space of the same data, for model migrations), is the same run
with another seed::

    python -m latentspace.embedder.models.train_tiny_shapes --seed 7 --name tiny-shapes-b \
        --out src/latentspace/embedder/models/tiny_shapes_b
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentspace.embedder.models import TINY_SHAPES_DIR
from latentspace.embedder.models.shapes import COLOURS, SHAPES, caption_for, generate

__all__ = ["TINY_SHAPES_CONFIG", "TrainConfig", "bundled_dir", "train", "write_model_dir"]

logger = logging.getLogger(__name__)

IMAGE_SIZE = 64
TINY_SHAPES_CONFIG: dict[str, Any] = {
    "model_cfg": {
        "embed_dim": 64,
        "vision_cfg": {
            "image_size": IMAGE_SIZE,
            "layers": 3,
            "width": 96,
            "head_width": 32,
            "patch_size": 16,
        },
        "text_cfg": {
            "context_length": 16,
            "vocab_size": 49408,
            "width": 64,
            "heads": 2,
            "layers": 2,
        },
    },
    "preprocess_cfg": {
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    },
}


def bundled_dir() -> Path:
    """The folder of the shipped tiny-shapes model inside the package."""
    return TINY_SHAPES_DIR


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run."""

    steps: int = 1200
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 100
    train_images: int = 16_384
    partial_rate: float = 0.15
    seed: int = 0
    threads: int = 2


def _build_model() -> tuple[Any, Any, Any]:
    import open_clip

    cfg = TINY_SHAPES_CONFIG
    model = open_clip.CLIP(**cfg["model_cfg"])
    pre = cfg["preprocess_cfg"]
    preprocess = open_clip.image_transform(
        IMAGE_SIZE,
        is_train=False,
        mean=pre["mean"],
        std=pre["std"],
        interpolation=pre["interpolation"],
    )
    tokenizer = open_clip.SimpleTokenizer(
        context_length=cfg["model_cfg"]["text_cfg"]["context_length"]
    )
    return model, preprocess, tokenizer


def train(config: TrainConfig) -> Any:
    """Train a fresh model; returns it in eval mode (fp32)."""
    from open_clip.loss import ClipLoss

    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    model, preprocess, tokenizer = _build_model()

    started = time.perf_counter()
    samples = generate(config.train_images, seed=config.seed + 1, size=IMAGE_SIZE)
    pixels = torch.stack([preprocess(s.image) for s in samples])
    labels = [(s.colour, s.shape) for s in samples]
    logger.info(
        "generated %d training images in %.1fs", len(samples), time.perf_counter() - started
    )

    token_cache: dict[str, torch.Tensor] = {}

    def tokens(captions: list[str]) -> torch.Tensor:
        for c in captions:
            if c not in token_cache:
                token_cache[c] = tokenizer([c])[0]
        return torch.stack([token_cache[c] for c in captions])

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [
        p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)
    ]
    optimiser = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    loss_fn = ClipLoss()
    model.train()
    for step in range(config.steps):
        lr = config.lr * min(1.0, (step + 1) / config.warmup)
        lr *= 0.5 * (1 + math.cos(math.pi * step / config.steps))
        for group in optimiser.param_groups:
            group["lr"] = lr
        idx = rng.choice(len(samples), size=config.batch_size, replace=False)
        captions = [caption_for(labels[i][0], labels[i][1], rng, config.partial_rate) for i in idx]
        image_features, text_features, logit_scale = model(pixels[idx], tokens(captions))
        loss = loss_fn(image_features, text_features, logit_scale)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 50 == 0 or step == config.steps - 1:
            logger.info(
                "step %d/%d loss %.3f scale %.1f (%.0fs)",
                step,
                config.steps,
                loss.item(),
                logit_scale.item(),
                time.perf_counter() - started,
            )
    model.eval()
    return model


def write_model_dir(model: torch.nn.Module, out: Path, *, name: str = "tiny-shapes") -> Path:
    """Write config + fp16 safetensors weights to ``out``; returns the weights path."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    (out / "open_clip_config.json").write_text(json.dumps(TINY_SHAPES_CONFIG, indent=2) + "\n")
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    weights = out / "open_clip_model.safetensors"
    save_file(state, str(weights), metadata={"format": "pt", "name": name})
    return weights


def _model_card(
    config: TrainConfig, metrics: dict[str, Any], seconds: float, size: int, name: str
) -> str:
    queries = metrics["n_arithmetic_queries"]
    return f"""# {name}

A tiny CLIP (open_clip `CLIP`, ViT image tower, causal text transformer with the open_clip BPE
tokenizer) trained from scratch by `python -m latentspace.embedder.models.train_tiny_shapes`
on generated images of {len(COLOURS)} colours × {len(SHAPES)} shapes
({", ".join(COLOURS)}; {", ".join(SHAPES)}), random position, size, rotation and background.
It exists so that tests and the offline demo can check that search *means* something without
downloading weights. It knows nothing but coloured shapes.

- architecture: `open_clip_config.json` beside this file;
  weights fp16 safetensors, {size / 1e6:.1f} MB
- training: {config.steps} steps × batch {config.batch_size}, AdamW lr {config.lr},
  open_clip `ClipLoss`, {config.train_images} images (seed {config.seed + 1}),
  {config.partial_rate:.0%} colour-only or shape-only captions;
  {seconds / 60:.1f} min on the machine that trained it
- full config: `{json.dumps(asdict(config))}`

## Metrics on held-out draws (seed {metrics["seed"]}, {metrics["n_images"]} images)

| metric | value | target |
|---|---|---|
| text→image precision@5 ("a {{colour}} {{shape}}") | {metrics["precision_at_5"]:.3f} | ≥ 0.95 |
| arithmetic ({queries} queries) | {metrics["arithmetic_accuracy"]:.3f} | ≥ 0.90 |

Arithmetic: normalise(image(c, s) − text(c) + text(c')) must find an image of shape s in
colour c' first, for every held-out image and every other colour c'.

`tests/embedder/test_tiny_shapes.py` re-measures both from the shipped file.
"""


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    from latentspace.embedder.models.evaluate import HELDOUT_SEED, measure_tiny_shapes
    from latentspace.embedder.openclip import OpenClipEncoder
    from latentspace.settings import EncoderSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=bundled_dir())
    parser.add_argument(
        "--name", default="tiny-shapes", help="the model's name (tiny-shapes-b: --seed 7)"
    )
    defaults = TrainConfig()
    for field, value in asdict(defaults).items():
        parser.add_argument(f"--{field.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = TrainConfig(**{f: getattr(args, f) for f in asdict(defaults)})
    started = time.perf_counter()
    model = train(config)
    seconds = time.perf_counter() - started
    weights = write_model_dir(model, args.out, name=args.name)
    encoder = OpenClipEncoder.from_local_dir(
        args.out, EncoderSettings(device="cpu"), name=args.name
    )
    result = measure_tiny_shapes(encoder)
    metrics = {**asdict(result), "seed": HELDOUT_SEED}
    logger.info("held-out metrics: %s", metrics)
    (args.out / "MODEL_CARD.md").write_text(
        _model_card(config, metrics, seconds, weights.stat().st_size, args.name)
    )


if __name__ == "__main__":
    main()
