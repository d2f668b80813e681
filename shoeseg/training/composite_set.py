"""Build a labelled check set (``images/`` + ``masks/``, as ``bench/``) from RGBA cutouts pasted on backgrounds.

For scoring away from the benchmark's own pictures, e.g. the ``shoes/val`` cutouts on the ``street_*``
photos that ``bench/`` never uses, on synthetic studio sweeps, or on a glossy studio table; then
``make eval DATA=<out>``:

    python -m shoeseg.training.composite_set --cutouts ../shared/data/shoes/val \\
        --backgrounds '../shared/data/backgrounds/street_*' --out /tmp/street_check
    python -m shoeseg.training.composite_set --cutouts ../shared/data/shoes/val --studio --out /tmp/white_check
    python -m shoeseg.training.composite_set --cutouts ../shared/data/shoes/val --glossy --out /tmp/glossy_check

Each cutout goes once on a canvas of random size and aspect, at a random scale (its longest side a
fraction ``--scale`` of the canvas' shorter side) and place; seeded, so the same arguments give the same set.
``--glossy`` is ``--studio`` plus the shoe's faded mirror image on the table below it
(``studio.mirror_reflection``, labelled background): with the same seed both sets hold the same shoes on the
same sweeps at the same places, so their scores differ by the reflection alone.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .backgrounds import list_images, random_crop_resize, studio_sweep
from .copy_paste import composite, place_object
from .data import cutout_files, read_cutout, read_rgb
from .studio import mirror_reflection


def composites(
    cutouts: list[Path],
    backgrounds: list[Path],
    scale: tuple[float, float] = (0.3, 0.9),
    longest: tuple[int, int] = (720, 1024),
    seed: int = 0,
    reflection: bool = False,
) -> Iterator[tuple[Path, np.ndarray, np.ndarray]]:
    """Each cutout once on a canvas -> (cutout path, (H, W, 3) uint8 RGB composite, (H, W) float32 alpha); no
    ``backgrounds``: studio sweeps, with ``reflection`` a glossy table's mirror image below the shoe."""
    rng = np.random.default_rng(seed)
    for index, path in enumerate(cutouts):
        rgb, alpha = read_cutout(path)
        side, aspect = int(rng.integers(longest[0], longest[1] + 1)), rng.uniform(0.6, 1.5)  # aspect: h / w
        size = (side, round(side / aspect)) if aspect >= 1 else (round(side * aspect), side)
        if backgrounds:
            background = random_crop_resize(read_rgb(backgrounds[rng.integers(len(backgrounds))]), size, rng)
        else:
            background = studio_sweep(size, rng)
        centre = (rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65))
        obj, mask = place_object(rgb, alpha, size, rng.uniform(*scale), centre)
        background = background.astype(np.float32)
        if reflection:  # its own generator: the main stream, hence the layout, stays that of --studio
            background = mirror_reflection(background, obj, mask, np.random.default_rng([seed, index]))
        yield path, composite(obj, mask, background), mask


def build_set(cutouts: list[Path], backgrounds: list[Path], out: Path, **layout: Any) -> int:
    """Write ``out/images/<stem>.jpg`` and ``out/masks/<stem>.png`` for each of ``composites(cutouts,
    backgrounds, **layout)``. Returns the number of pairs."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    count = 0
    for path, image, mask in composites(cutouts, backgrounds, **layout):
        cv2.imwrite(
            str(out / "images" / f"{path.stem}.jpg"),
            cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, 92],
        )
        cv2.imwrite(str(out / "masks" / f"{path.stem}.png"), np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8))
        count += 1
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cutouts", required=True, help="folder of RGBA cutouts (e.g. ../shared/data/shoes/val)")
    parser.add_argument("--backgrounds", default="", help="background photos: a folder or a glob ('dir/street_*')")
    parser.add_argument("--studio", action="store_true", help="synthetic studio sweeps instead of photos")
    parser.add_argument(
        "--glossy", action="store_true", help="studio sweeps with the shoe's mirror image on a glossy table below it"
    )
    parser.add_argument("--scale", default="0.3,0.9", help="object's longest side / canvas' shorter side: low,high")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.studio + args.glossy + bool(args.backgrounds) != 1:
        parser.error("give one of --backgrounds, --studio or --glossy")
    backgrounds: list[Path] = []
    if args.backgrounds:
        folder, pattern = (
            (Path(args.backgrounds), "*")
            if Path(args.backgrounds).is_dir()
            else (Path(args.backgrounds).parent, Path(args.backgrounds).name)
        )
        backgrounds = [p for p in list_images(folder) if p.match(pattern)]
        if not backgrounds:
            parser.error(f"--backgrounds {args.backgrounds!r} matches no image")
    low, high = (float(v) for v in args.scale.split(","))
    count = build_set(
        cutout_files(Path(args.cutouts)),
        backgrounds,
        args.out,
        scale=(low, high),
        seed=args.seed,
        reflection=args.glossy,
    )
    print(f"wrote {count} pairs to {args.out}/images and {args.out}/masks")


if __name__ == "__main__":
    main()
