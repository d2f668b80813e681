"""Cut out the background of one photo or a folder of photos, in-process (no server needed).

    python predict.py --image in.jpg --output out.png [--weights weights/resunet.pth]
    python predict.py --input-dir photos/ --output-dir cutouts/ [--mode rgb --bg '#f0f0f0' --crop --size 1200]

The server's request options as flags, parsed and applied by the same code (handler/options.py,
handler/compose.py): --mode is the server's ``output`` (rgba|mask|rgb), the others keep their names.
Folders are walked recursively; files whose result already exists are skipped; failures are listed at
the end and make the exit status 1. Uses CUDA when available.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from handler.compose import render
from handler.cutout import predict_alpha
from handler.image_io import InvalidImageError, decode_image
from handler.options import ALLOWED, OptionError, Options, parse_options
from model import load_model

SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
FLAGS = {
    "mode": "output",
    "bg": "bg",
    "margin": "margin",
    "format": "format",
    "size": "size",
    "threshold": "threshold",
    "quality": "quality",
}
SWITCHES = ("crop", "refine", "tta")


def cutout_file(model: torch.nn.Module, source: Path, target: Path, options: Options = Options()) -> None:  # noqa: B008
    """Write ``source``'s result (default: RGBA PNG, alpha = soft mask, input resolution) to ``target``."""
    image = decode_image(source.read_bytes())
    data = render(image, predict_alpha(model, image, options.tta, options.quality), options)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def options_from_args(args: argparse.Namespace) -> Options:
    """The flags given, as the server's option fields -> ``Options`` (same validation, same messages)."""
    fields = {key: getattr(args, flag) for flag, key in FLAGS.items() if getattr(args, flag) is not None}
    fields |= {key: "true" for key in SWITCHES if getattr(args, key)}
    return parse_options(fields)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="weights/resunet.pth", help="checkpoint (default: the shipped one)")
    parser.add_argument("--image", type=Path, help="one input photo")
    parser.add_argument("--output", type=Path, help="where --image's result goes")
    parser.add_argument("--input-dir", type=Path, help="folder of photos (recursive)")
    parser.add_argument("--output-dir", type=Path, help="where the folder's results go, same tree, .png/.webp")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    group = parser.add_argument_group("result options (the server's request options)")
    group.add_argument("--mode", help=f"the server's output=: {ALLOWED['output']} (default rgba)")
    for flag in ("bg", "margin", "format", "size", "threshold", "quality"):
        group.add_argument(f"--{flag}", help=ALLOWED[flag])
    group.add_argument("--crop", action="store_true", help="crop to the object (alpha noise ignored), see --margin")
    group.add_argument("--refine", action="store_true", help="estimate the object's colours on soft edges")
    group.add_argument("--tta", action="store_true", help="test-time augmentation (flip), ~2x the model time")
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args)
    except OptionError as err:
        flag = "--mode" if err.option == "output" else f"--{err.option}"
        parser.error(f"{flag}: {err.message}")
    if bool(args.image) == bool(args.input_dir):
        parser.error("give either --image (with --output) or --input-dir (with --output-dir)")
    if args.image:
        default = args.image.with_name(f"{args.image.stem}_cutout{options.suffix}")
        jobs = [(args.image, args.output or default)]
    else:
        if not args.output_dir:
            parser.error("--input-dir needs --output-dir")
        sources = sorted(p for p in args.input_dir.rglob("*") if p.suffix.lower() in SUFFIXES)
        jobs = [(p, (args.output_dir / p.relative_to(args.input_dir)).with_suffix(options.suffix)) for p in sources]
        jobs = [(s, t) for s, t in jobs if not t.exists()]
    model = load_model(args.weights, args.device)
    failures = []
    for source, target in tqdm(jobs, desc="cutouts", disable=len(jobs) < 2):
        try:
            cutout_file(model, source, target, options)
        except (InvalidImageError, OSError) as err:
            failures.append(f"{source}: {err}")
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    print(f"{len(jobs) - len(failures)} written, {len(failures)} failed", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
