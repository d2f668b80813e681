"""Check a folder of catalogue outputs against the catalogue style's bars (docs/catalogue.md).

    shoeseg remove ../shared/data/photos -o out/amazon --preset amazon
    python -m benchmarks.catalogue_check out/amazon --canvas 2000x2000 --fill 0.85
    shoeseg remove ../shared/data/photos -o out/floor --canvas 1600x1600 --align bottom --floor 0.9 --output rgb
    python -m benchmarks.catalogue_check out/floor --canvas 1600x1600 --floor 0.9

Per image: its size, the product's box (pixels not exactly the white backdrop), whether the box's binding side
is ``fill`` of the canvas (+-1 px) and centred (+-1 px), and its lowest row; a summary line at the end.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def product_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the pixels that are not pure white (RGB) or not clear (RGBA)."""
    found = pixels[..., 3] > 0 if pixels.shape[2] == 4 else np.any(pixels != 255, axis=2)
    rows, cols = np.flatnonzero(found.any(axis=1)), np.flatnonzero(found.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--canvas", required=True, help="WxH the outputs must have")
    parser.add_argument("--fill", type=float, default=0.0, help="check the binding side and the centring")
    parser.add_argument("--floor", type=float, default=0.0, help="check the product's lowest row")
    args = parser.parse_args(argv)
    width, height = map(int, args.canvas.split("x"))
    failures, lows = [], []
    files = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in {".png", ".webp"})
    for path in files:
        pixels = np.asarray(Image.open(path))
        if pixels.shape[:2] != (height, width):
            failures.append(f"{path.name}: size {pixels.shape[1]}x{pixels.shape[0]}")
            continue
        top, bottom, left, right = product_box(pixels)
        lows.append(bottom - 1)
        if args.fill:
            binding = max((right - left) / width, (bottom - top) / height)
            side = (right - left) if (right - left) / width >= (bottom - top) / height else (bottom - top)
            target = args.fill * (width if side == right - left else height)
            if abs(side - target) > 1:
                failures.append(f"{path.name}: binding side {side} px ({binding:.4f}), want {target:.0f} +-1")
            if abs((left + right) / 2 - width / 2) > 1 or abs((top + bottom) / 2 - height / 2) > 1:
                failures.append(f"{path.name}: box {left}..{right} x {top}..{bottom} is not centred +-1")
    if args.floor and lows and max(lows) - min(lows) > 1:
        failures.append(f"lowest rows {min(lows)}..{max(lows)}: not one floor line +-1")
    for line in failures:
        print("FAIL", line)
    floor = f", lowest rows {min(lows)}..{max(lows)}" if lows else ""
    print(f"{len(files)} images, {len(failures)} failures{floor}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
