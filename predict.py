"""Cut out the background of one photo or a folder of photos, in-process (no server needed).

    python predict.py --image in.jpg --output out.png [--weights weights/resunet.pth]
    python predict.py --input-dir photos/ --output-dir cutouts/

Folders are walked recursively; files whose cutout already exists are skipped; failures are listed
at the end and make the exit status 1. Uses CUDA when available.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from handler.cutout import predict_alpha
from handler.image_io import InvalidImageError, decode_image, encode_rgba_png
from model import load_model

SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def cutout_file(model: torch.nn.Module, source: Path, target: Path) -> None:
    """Write ``source``'s RGBA PNG cutout (alpha = soft mask, input resolution) to ``target``."""
    image = decode_image(source.read_bytes())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(encode_rgba_png(image, predict_alpha(model, image)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="weights/resunet.pth", help="checkpoint (default: the shipped one)")
    parser.add_argument("--image", type=Path, help="one input photo")
    parser.add_argument("--output", type=Path, help="where --image's cutout goes (PNG)")
    parser.add_argument("--input-dir", type=Path, help="folder of photos (recursive)")
    parser.add_argument("--output-dir", type=Path, help="where the folder's cutouts go, same tree, .png")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if bool(args.image) == bool(args.input_dir):
        parser.error("give either --image (with --output) or --input-dir (with --output-dir)")
    if args.image:
        jobs = [(args.image, args.output or args.image.with_name(args.image.stem + "_cutout.png"))]
    else:
        if not args.output_dir:
            parser.error("--input-dir needs --output-dir")
        sources = sorted(p for p in args.input_dir.rglob("*") if p.suffix.lower() in SUFFIXES)
        jobs = [(p, (args.output_dir / p.relative_to(args.input_dir)).with_suffix(".png")) for p in sources]
        jobs = [(s, t) for s, t in jobs if not t.exists()]
    model = load_model(args.weights, args.device)
    failures = []
    for source, target in tqdm(jobs, desc="cutouts", disable=len(jobs) < 2):
        try:
            cutout_file(model, source, target)
        except (InvalidImageError, OSError) as err:
            failures.append(f"{source}: {err}")
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    print(f"{len(jobs) - len(failures)} written, {len(failures)} failed", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
