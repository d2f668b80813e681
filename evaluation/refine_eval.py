"""What ``refine=true`` (foreground colour estimation) buys, on composites whose true colours are known.

``bench/`` holds only masks, not the object's own colours under soft edges, so this pastes the cutouts
``bench/`` is built from (``shoes/val``, RGBA: true colour F and alpha) on the same room photos
(``backgrounds/shoe_*``), runs the model, and compares on the soft edge:

- ``edge_colour_err``: mean |colour - F| (0..255) where the true alpha is in (0.05, 0.95): the photo's own
  pixels (``raw``, what a cutout without refine carries) against the estimated foreground (``refined``);
- ``new_bg_err``: mean |cutout on green - truth on green| (0..255) where either alpha is soft: what a user
  sees after placing the cutout on a new background;
- the same with the true alpha (``oracle_*``): the method's own ceiling.

    python -m evaluation.refine_eval --data ../shared/data --weights shoeseg/weights/resunet.pth --limit 40
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from shoeseg.constants import DEFAULT_DATA_ROOT, DEFAULT_WEIGHTS
from shoeseg.model import load_model
from shoeseg.pipeline.compose import estimate_foreground
from shoeseg.pipeline.cutout import predict_alpha

GREEN = np.array([0, 200, 0], np.float32)


def composite(cutout: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGBA cutout (H, W, 4) uint8 on a background photo (resized to cover) -> (photo uint8, F float, alpha)."""
    h, w = cutout.shape[:2]
    scale = max(h / background.shape[0], w / background.shape[1])
    bg = cv2.resize(background, (round(background.shape[1] * scale) + 1, round(background.shape[0] * scale) + 1))
    bg = bg[:h, :w].astype(np.float32)
    fg, alpha = cutout[..., :3].astype(np.float32), cutout[..., 3].astype(np.float32) / 255.0
    photo = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    return np.clip(photo + 0.5, 0, 255).astype(np.uint8), fg, alpha


def errors(fg_hat: np.ndarray, alpha_hat: np.ndarray, fg: np.ndarray, alpha: np.ndarray) -> dict[str, float]:
    """Edge colour error and new-background error of one cutout (see the module docstring)."""
    edge = (alpha > 0.05) & (alpha < 0.95)
    colour = float(np.abs(fg_hat[edge].astype(np.float32) - fg[edge]).mean()) if edge.any() else 0.0
    soft = edge | ((alpha_hat > 0.05) & (alpha_hat < 0.95))
    mine = alpha_hat[..., None] * fg_hat + (1 - alpha_hat[..., None]) * GREEN
    truth = alpha[..., None] * fg + (1 - alpha[..., None]) * GREEN
    new_bg = float(np.abs(mine[soft] - truth[soft]).mean()) if soft.any() else 0.0
    return {"edge_colour_err": colour, "new_bg_err": new_bg}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA_ROOT, help="holds shoes/val and backgrounds/")
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--limit", type=int, default=40, help="evenly spaced cutouts (0: all 133)")
    parser.add_argument("--out", default="reports/refine.json")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = Path(args.data)
    cutouts = sorted((data / "shoes" / "val").glob("*.webp"))
    backgrounds = sorted((data / "backgrounds").glob("shoe_*"))
    if args.limit and args.limit < len(cutouts):
        cutouts = cutouts[:: len(cutouts) // args.limit][: args.limit]
    model = load_model(args.weights)
    rows: dict[str, list[float]] = {}
    seconds = 0.0
    for i, path in enumerate(tqdm(cutouts, desc="refine", mininterval=5)):
        rgba = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
        background = cv2.cvtColor(cv2.imread(str(backgrounds[i % len(backgrounds)])), cv2.COLOR_BGR2RGB)
        photo, fg, alpha = composite(rgba, background)
        alpha_hat = predict_alpha(model, photo)
        t0 = time.perf_counter()
        refined = estimate_foreground(photo, alpha_hat)
        seconds += time.perf_counter() - t0
        results = {
            "raw": errors(photo, alpha_hat, fg, alpha),
            "refined": errors(refined, alpha_hat, fg, alpha),
            "oracle_raw": errors(photo, alpha, fg, alpha),
            "oracle_refined": errors(estimate_foreground(photo, alpha), alpha, fg, alpha),
        }
        for variant, values in results.items():
            for name, value in values.items():
                rows.setdefault(f"{variant}.{name}", []).append(value)
    report = {key: float(np.mean(values)) for key, values in rows.items()}
    report |= {"n": len(cutouts), "refine_s_per_image": seconds / max(1, len(cutouts)), "weights": args.weights}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print("| alpha | cutout colours | edge colour error | new-background error |\n|---|---|---|---|")
    for alpha_name, prefix in (("model", ""), ("true", "oracle_")):
        for variant in ("raw", "refined"):
            colour, new_bg = report[f"{prefix}{variant}.edge_colour_err"], report[f"{prefix}{variant}.new_bg_err"]
            print(f"| {alpha_name} | {variant} | {colour:.2f} | {new_bg:.2f} |")
    print(f"refine: {report['refine_s_per_image']:.2f} s per image (n={len(cutouts)}); wrote {out}")


if __name__ == "__main__":
    main()
