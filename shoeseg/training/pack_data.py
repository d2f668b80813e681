"""Shrink a data root for a remote training machine: every image down to what training can use.

    python -m shoeseg.training.pack_data --out .gpudata [--data ../shared/data]

Training composes on a ``canvas`` (512 px) and validates at ``val_size`` (512 px), so pixels beyond
that never reach the model. Cutouts keep a lossless alpha (WebP, alpha_quality 100); bench images are
letterboxed at 512 anyway. The copy is ~5x smaller than the original and the training configs run on it
unchanged (``--data .gpudata``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from .config import data_root

# folder -> (longest side kept, output suffix)
PLAN = {
    "shoes/train": (512, ".webp"),
    "shoes/train_photos/images": (640, ".jpg"),  # real photos: the crops and zoom-outs need a margin over 512
    "shoes/train_photos/masks": (640, ".png"),
    "backgrounds": (640, ".jpg"),
    "bench/white/images": (512, ".jpg"),
    "bench/white/masks": (512, ".png"),
    "bench/scene/images": (512, ".jpg"),
    "bench/scene/masks": (512, ".png"),
    "bench/real/images": (512, ".jpg"),
    "bench/real/masks": (512, ".png"),
}


def shrink(src: Path, dst: Path, longest: int) -> None:
    """Resize ``src`` so its longest side is at most ``longest`` (area filter) and save as ``dst``."""
    with Image.open(src) as image:
        image.load()
        scale = longest / max(image.size)
        if scale < 1:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BOX)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.suffix == ".webp":
            image.save(dst, quality=85, alpha_quality=100, method=4)
        elif dst.suffix == ".jpg":
            image.convert("RGB").save(dst, quality=80)
        else:
            image.save(dst, optimize=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="data root (default $SHOESEG_DATA or ../shared/data)")
    parser.add_argument("--out", type=Path, required=True, help="where the shrunk copy goes")
    args = parser.parse_args(argv)
    root = data_root(args.data)
    for folder, (longest, suffix) in PLAN.items():
        if not (root / folder).is_dir():
            print(f"{folder}: not in {root}, skipped")
            continue
        files = sorted(p for p in (root / folder).iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
        for src in files:
            shrink(src, args.out / folder / (src.stem + suffix), longest)
        print(f"{folder}: {len(files)} files")


if __name__ == "__main__":
    main()
