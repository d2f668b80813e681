"""Calibrate a checkpoint's int8 graph: activation ranges over training composites -> ``<weights>.int8.json``.

    python -m shoeseg.training.calibrate --weights shoeseg/weights/resunet.pth --data ../shared/data

The composites are built like bench's (``composite_set.composites``): ``shoes/train`` cutouts at a random
scale and place, half on studio sweeps, half on the training background photos, then letterboxed as the
server feeds them. Never ``bench/`` or ``shoes/val``: the int8 graph is scored on those. The ranges file is
small and is committed beside the weights, so ``make mar`` builds the int8 graph without the data.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from shoeseg.constants import DEFAULT_WEIGHTS
from shoeseg.model.quantize import calibrate, ranges_file
from shoeseg.model.sessions import cached_graph
from shoeseg.pipeline.remover import Remover

from .backgrounds import list_images
from .composite_set import composites
from .config import data_root
from .data import cutout_files

DEFAULT_IMAGES = 256


def calibration_inputs(remover: Remover, data: Path, images: int, seed: int = 0) -> Iterator[np.ndarray]:
    """``images`` training composites (half studio, half photo backgrounds) -> (1, 3, S, S) float32 each."""
    cutouts = cutout_files(data / "shoes" / "train")
    picked = [
        cutouts[i] for i in np.random.default_rng(seed).choice(len(cutouts), images, replace=images > len(cutouts))
    ]
    half = images // 2
    layouts = [(picked[:half], []), (picked[half:], list_images(data / "backgrounds"))]
    for index, (group, backgrounds) in enumerate(layouts):
        for _, image, _ in composites(group, backgrounds, longest=(600, 1600), seed=seed + index):
            yield remover.prepare(image)[0][None]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help=f"checkpoint (default {DEFAULT_WEIGHTS})")
    parser.add_argument("--data", type=Path, default=None, help="data root with shoes/train and backgrounds/")
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES, help=f"composites (default {DEFAULT_IMAGES})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="ranges file (default: <weights>.int8.json beside it)")
    args = parser.parse_args(argv)
    if args.images < 2:
        parser.error("--images: at least 2 (half studio, half photo backgrounds)")
    remover = Remover(args.weights, device="cpu", runtime="onnx")
    graph = cached_graph(remover.model, remover.weights)
    note = f"{args.images} composites of shoes/train (half studio sweeps, half backgrounds/), seed {args.seed}"
    ranges = calibrate(
        graph, calibration_inputs(remover, data_root(args.data), args.images, args.seed), args.weights, note
    )
    out = args.out or ranges_file(args.weights)
    out.write_text(json.dumps(ranges, indent=None, sort_keys=True) + "\n")
    print(f"wrote {out}: ranges of {len(ranges['ranges']['data'])} tensors over {ranges['images']} images")


if __name__ == "__main__":
    main()
