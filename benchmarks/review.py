"""Real-photo review: every photo as photo | ours (default) | ours (quality=best) | a peer, each cutout on
a coloured backdrop, in numbered contact sheets to look through by eye and count the cutouts with a
clear defect (a kept reflection, a filled strap gap, a see-through insole, a halo).

    python -m benchmarks.review --photos ../shared/data/photos --out build/review [--peer .peers/u2net.onnx]
    python -m benchmarks.review --only 61.jpg 97.jpg --per-sheet 2 --out build/worst    # a few photos

(``make review``). Writes ``sheet_<n>.png`` (``--per-sheet`` photos each, labelled by file name),
``review.json`` (each photo's confidence for both modes) and every alpha at the photo's own size
(``alphas/<photo>.<model>.png``, to look closer at one) in a git-ignored folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from benchmarks.gallery import BACKDROP, FRAME, SUFFIXES
from evaluation.peers import FETCHED_PEERS_DIR, PEERS
from shoeseg.constants import DEFAULT_DATA_ROOT, DEFAULT_WEIGHTS, RUNTIMES
from shoeseg.pipeline import Remover
from shoeseg.pipeline.compose import over
from shoeseg.pipeline.image_io import alpha_to_uint8
from shoeseg.pipeline.options import parse_options

BACKDROP_RGBA = parse_options({"bg": BACKDROP}).bg


def on_backdrop(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 and (H, W) alpha in [0, 1] -> (H, W, 3) uint8 composite over ``BACKDROP``: the same
    plain blend for every model (the server's ``bg``), so none looks better for how it is drawn."""
    return over(rgb, alpha.astype(np.float32, copy=False), BACKDROP_RGBA)[0]


def tile(image: np.ndarray, height: int, label: str = "") -> np.ndarray:
    """``image`` resized to ``height`` px tall, framed, with ``label`` written in its top-left corner."""
    width = round(image.shape[1] * height / image.shape[0])
    out = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    out[[0, -1], :] = out[:, [0, -1]] = FRAME
    if label:
        cv2.putText(out, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def row(tiles: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Tiles side by side on white, ``gap`` px around each."""
    return np.concatenate([np.pad(t, ((gap, gap), (gap, gap), (0, 0)), constant_values=255) for t in tiles], axis=1)


def sheet(lines: list[np.ndarray]) -> np.ndarray:
    """Rows stacked, each padded on white to the widest."""
    width = max(line.shape[1] for line in lines)
    return np.concatenate([np.pad(x, ((0, 0), (0, width - x.shape[1]), (0, 0)), constant_values=255) for x in lines])


def review(
    photos: list[Path], remover: Remover, peer, height: int, alpha_dir: Path
) -> tuple[list[np.ndarray], list[dict]]:
    """One row per photo (photo | default | best | peer) and its confidences; each alpha saved in ``alpha_dir``."""
    rows, scores = [], []
    fast, best = parse_options({}), parse_options({"quality": "best"})
    for path in photos:
        rgb = remover.decode(path.read_bytes())
        alphas = {"default": remover.predict_alpha(rgb, fast), "best": remover.predict_alpha(rgb, best)}
        if peer is not None:
            alphas[peer.name] = peer.predict(rgb)
        for name, alpha in alphas.items():
            Image.fromarray(alpha_to_uint8(alpha)).save(alpha_dir / f"{path.stem}.{name}.png")
        tiles = [tile(rgb, height, path.name)]
        tiles += [tile(on_backdrop(rgb, a), height, name) for name, a in alphas.items()]
        rows.append(tiles)
        scores.append({"photo": path.name} | {k: remover.confidence(alphas[k]) for k in ("default", "best")})
    return rows, scores


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=Path(DEFAULT_DATA_ROOT) / "photos")
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--peer", type=Path, default=Path(FETCHED_PEERS_DIR) / "u2net.onnx", help="an ONNX peer")
    parser.add_argument("--out", type=Path, default=Path("build/review"))
    parser.add_argument("--runtime", default="auto", choices=RUNTIMES, help="our forward path (auto: as the server)")
    parser.add_argument("--per-sheet", type=int, default=3)
    parser.add_argument("--height", type=int, default=400, help="tile height in pixels")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these photos only (file names), in this order")
    args = parser.parse_args(argv)
    photos = sorted((p for p in args.photos.iterdir() if p.suffix.lower() in SUFFIXES), key=lambda p: p.name)
    if args.only:
        by_name = {p.name: p for p in photos}
        missing = [name for name in args.only if name not in by_name]
        if missing:
            raise SystemExit(f"not in {args.photos}: {', '.join(missing)}")
        photos = [by_name[name] for name in args.only]
    if not photos:
        raise SystemExit(f"no photos in {args.photos}")
    peer = PEERS[args.peer.stem](args.peer.stem, args.peer) if args.peer.is_file() else None
    if peer is None:
        print(f"no peer at {args.peer} (`make peers` fetches U^2-Net full): ours only")
    (args.out / "alphas").mkdir(parents=True, exist_ok=True)
    rows, scores = review(photos, Remover(args.weights, "cpu", args.runtime), peer, args.height, args.out / "alphas")
    lines = [row(tiles) for tiles in rows]
    for n, start in enumerate(range(0, len(lines), args.per_sheet), 1):
        Image.fromarray(sheet(lines[start : start + args.per_sheet])).save(args.out / f"sheet_{n}.png", optimize=True)
    (args.out / "review.json").write_text(json.dumps(scores, indent=1))
    print(f"wrote {n} sheets of {len(rows)} photos and review.json to {args.out}")


if __name__ == "__main__":
    main()
