"""README gallery: real photos | mask | cutout on a coloured backdrop (white hides halos and filled gaps),
through the pipeline the server runs.

    python -m benchmarks.gallery --photos ../shared/data/photos --out docs/gallery.png [--weights ckpt.pth]

(``make gallery``). A few evenly spaced photos, downscaled, two per row; the PNG stays well under 1 MB.
``--catalogue``: each photo as it came | ``CATALOGUE_STYLES`` (the catalogue style page's picture).
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from shoeseg.constants import DEFAULT_DATA_ROOT, DEFAULT_WEIGHTS
from shoeseg.pipeline import Remover
from shoeseg.pipeline.options import Options, parse_options

SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
FRAME = 200
BACKDROP = "#c8148c"  # magenta: no shoe colour hides a halo, a grey smear or a filled strap gap on it


def triplet(remover: Remover, data: bytes, height: int) -> np.ndarray:
    """One photo -> (height, 3 * w, 3) uint8: input | mask | cutout on ``BACKDROP``, each ``height`` px tall."""
    image = remover.decode(data)
    alpha = remover.predict_alpha(image)
    mask = np.asarray(Image.open(io.BytesIO(remover.render(image, alpha, Options(output="mask"))))).copy()
    backdrop = parse_options({"output": "rgb", "bg": BACKDROP})
    on_colour = np.asarray(Image.open(io.BytesIO(remover.render(image, alpha, backdrop))))
    width = round(image.shape[1] * height / image.shape[0])
    tiles = [cv2.resize(t, (width, height), interpolation=cv2.INTER_AREA) for t in (image, mask, on_colour)]
    tiles[1] = np.repeat(tiles[1][..., None], 3, axis=2)
    for tile in tiles:  # a thin grey frame: white photos and white backgrounds stay apart
        tile[[0, -1], :] = tile[:, [0, -1]] = FRAME
    return np.concatenate(tiles, axis=1)


# docs/catalogue.md's picture: each photo, then through these request options
CATALOGUE_STYLES = ({"preset": "amazon"}, {"preset": "amazon", "align": "bottom", "shadow": "contact"})


def styled(remover: Remover, data: bytes, height: int) -> np.ndarray:
    """One photo -> (height, w, 3) uint8: the photo as it came | each of ``CATALOGUE_STYLES``."""
    image = remover.decode(data)
    alpha = remover.predict_alpha(image)
    tiles = [image]
    for fields in CATALOGUE_STYLES:
        tiles.append(np.asarray(Image.open(io.BytesIO(remover.render(image, alpha, parse_options(fields))))))
    tiles = [
        cv2.resize(t, (round(t.shape[1] * height / t.shape[0]), height), interpolation=cv2.INTER_AREA) for t in tiles
    ]
    for tile in tiles:
        tile[[0, -1], :] = tile[:, [0, -1]] = FRAME
    return np.concatenate(tiles, axis=1)


def gallery(
    remover: Remover,
    photos: list[Path],
    height: int = 160,
    per_row: int = 2,
    gap: int = 6,
    cell: Callable[[Remover, bytes, int], np.ndarray] = triplet,
) -> np.ndarray:
    """``cell`` (``triplet`` or ``styled``) of each of ``photos`` laid out ``per_row`` to a row on white, ``gap``
    px apart."""
    cells = [cell(remover, p.read_bytes(), height) for p in photos]
    width = max(c.shape[1] for c in cells)
    rows = []
    for start in range(0, len(cells), per_row):
        row = [
            np.pad(c, ((0, 0), (0, width - c.shape[1]), (0, 0)), constant_values=255)
            for c in cells[start : start + per_row]
        ]
        row += [np.full((height, width, 3), 255, np.uint8)] * (per_row - len(row))
        spaced = [np.pad(c, ((gap, gap), (gap, gap), (0, 0)), constant_values=255) for c in row]
        rows.append(np.concatenate(spaced, axis=1))
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=Path(DEFAULT_DATA_ROOT) / "photos")
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--out", type=Path, default=Path("docs/gallery.png"))
    parser.add_argument("--count", type=int, default=6, help="photos, evenly spaced by name")
    parser.add_argument("--height", type=int, default=160, help="tile height in pixels")
    parser.add_argument("--catalogue", action="store_true", help="photo | amazon | bottom + contact shadow")
    args = parser.parse_args(argv)
    found = sorted((p for p in args.photos.iterdir() if p.suffix.lower() in SUFFIXES), key=lambda p: p.name)
    if not found:
        raise SystemExit(f"no photos in {args.photos}")
    step = max(1, len(found) // args.count)
    picked = found[::step][: args.count]
    grid = gallery(Remover(args.weights, "cpu"), picked, args.height, cell=styled if args.catalogue else triplet)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(args.out, optimize=True)
    size = f"{grid.shape[1]}x{grid.shape[0]}, {args.out.stat().st_size / 1e3:.0f} kB"
    print(f"wrote {args.out} ({size}) from {[p.name for p in picked]}")


if __name__ == "__main__":
    main()
