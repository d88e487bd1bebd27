"""Encoder throughput: images/s model-only vs decode+encode from files, and texts/s.

    python bench/bench_encoder.py [--images 512] [--skip-vit]

Two models: the bundled tiny-shapes CLIP, and an open_clip ViT-B-32 with random weights (the
compute of the real ViT-B-32 without needing its weights). Images are 256×256 JPEG files of
generated shapes. "model-only" feeds already preprocessed tensors; "decode+encode" reads the
files through the bulk path (decode + preprocess on N worker threads, model on the main one).
Writes the "encoder" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from latentspace.embedder import create_encoder, encode_image_files, load_image
from latentspace.embedder.base import ImageEncoder
from latentspace.embedder.images import iter_image_batches
from latentspace.embedder.models.shapes import TEMPLATES, generate
from latentspace.embedder.openclip import OpenClipEncoder
from latentspace.settings import EncoderSettings, LimitSettings

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def write_images(folder: Path, n: int) -> list[Path]:
    paths = []
    for i, sample in enumerate(generate(n, seed=7, size=256)):
        path = folder / f"{i:05d}.jpg"
        sample.image.save(path, quality=90)
        paths.append(path)
    return paths


def vit_b32_random(settings: EncoderSettings) -> ImageEncoder:
    import open_clip

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32")
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    return OpenClipEncoder.from_model(model, preprocess, tokenizer, "ViT-B-32 (random)", settings)


def rate(n: int, fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return n / (time.perf_counter() - started)


def measure(encoder: ImageEncoder, paths: list[Path], batch: int) -> dict[str, float]:
    limits = LimitSettings()
    images = [load_image(p, max_pixels=limits.max_image_pixels) for p in paths]
    pixels = torch.stack([encoder.preprocess(im) for im in images])
    encoder.encode_pixels(pixels[:batch])  # warm-up
    out: dict[str, float] = {
        "model-only images/s": rate(len(paths), lambda: encoder.encode_pixels(pixels))
    }
    for workers in (0, 2):

        def decode_only(workers: int = workers) -> None:
            for _ in iter_image_batches(
                paths,
                encoder.preprocess,
                batch_size=batch,
                max_pixels=limits.max_image_pixels,
                workers=workers,
            ):
                pass

        out[f"decode+preprocess only images/s ({workers} threads)"] = rate(len(paths), decode_only)
    for workers in (0, 2):
        settings = EncoderSettings(device="cpu", batch_size=batch, decode_workers=workers)

        def run(settings: EncoderSettings = settings) -> None:
            for _ in encode_image_files(encoder, paths, settings=settings, limits=limits):
                pass

        out[f"decode+encode images/s ({workers} decode threads)"] = rate(len(paths), run)
    texts = [
        t.format(colour=f"c{i}", shape=f"s{i}") for i in range(len(paths)) for t in TEMPLATES[:1]
    ]
    out["texts/s (cache off)"] = rate(len(texts), lambda: encoder.encode_text(texts))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--skip-vit", action="store_true")
    args = parser.parse_args()
    from results import machine, write_section

    settings = EncoderSettings(device="cpu", batch_size=args.batch, text_cache_size=0)
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp), args.images)
        tiny = create_encoder("tiny-shapes", settings)
        assert isinstance(tiny, ImageEncoder)
        rows["tiny-shapes"] = measure(tiny, paths, args.batch)
        print("tiny-shapes", rows["tiny-shapes"])
        if not args.skip_vit:
            vit_paths = paths[: max(64, args.images // 4)]
            rows["ViT-B-32 (random weights)"] = measure(
                vit_b32_random(settings), vit_paths, args.batch
            )
            print("ViT-B-32", rows["ViT-B-32 (random weights)"])
    metrics = list(next(iter(rows.values())))
    lines = [
        "## Encoder throughput (`bench/bench_encoder.py`)",
        "",
        f"Machine: {machine()}. Device: CPU, fp32, batch {args.batch}, 256×256 JPEG inputs,",
        f"{args.images} images for tiny-shapes, {max(64, args.images // 4)} for ViT-B-32.",
        "",
        "| model | " + " | ".join(metrics) + " |",
        "|---|" + "---:|" * len(metrics),
    ]
    for model, values in rows.items():
        lines.append(f"| {model} | " + " | ".join(f"{values[m]:.0f}" for m in metrics) + " |")
    lines += [
        "",
        "Decode threads speed up decoding alone, but in the full pipeline on 2 cores the model's",
        "own torch threads take the cores they would use; an earlier version with a process",
        "pool (forkserver, workers importing torch) reached 49 images/s on tiny-shapes because",
        "worker start-up and pickling dominated, so decoding moved to threads.",
    ]
    write_section("encoder", "\n".join(lines))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
