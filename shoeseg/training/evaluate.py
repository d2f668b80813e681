"""Score a checkpoint on ``images/`` + ``masks/`` folders at each image's own resolution.

``python -m shoeseg.training.evaluate --data ../shared/data/bench [--weights ckpt] [--out scores.json] [--peers]``
prints a table, writes ``{subset: {iou, precision, recall, f1, mae, n, s_per_image}}`` (per-image means;
with ``--peers`` also ``"peers": {name: {subset: ...}}``) and a PNG grid of the worst cutouts beside it.
``--tta`` scores the test-time augmented prediction (the server's ``tta=true``); ``--quality fast,best``
scores each of the server's ``quality`` modes (``"quality_best": {subset: ...}`` in the JSON for ``best``; the
subsets at the top level are the first mode's).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from shoeseg.constants import DEFAULT_WEIGHTS
from shoeseg.model import load_model
from shoeseg.model.runtime import ONNX_FILE, OnnxPredictor, export_onnx
from shoeseg.pipeline.cutout import predict_alpha
from shoeseg.pipeline.options import QUALITIES

from .data import pair_files, read_mask, read_rgb
from .metrics import MetricAccumulator, per_image_metrics

Predictor = Callable[[np.ndarray], np.ndarray]


def subsets(folder: Path) -> dict[str, Path]:
    """``folder`` itself when it holds ``images/``, else each child that does."""
    if (folder / "images").is_dir():
        return {folder.name: folder}
    found = {p.name: p for p in sorted(folder.iterdir()) if (p / "images").is_dir()}
    if not found:
        raise FileNotFoundError(f"{folder} holds no images/ + masks/ folder (nor subsets of them)")
    return found


def score_subset(
    predict: Predictor, folder: Path, desc: str, limit: int = 0
) -> tuple[dict, list[tuple[float, Path, np.ndarray]]]:
    """Per-image mean metrics over one subset (``limit``: evenly spaced subsample), and (iou, path, alpha)."""
    acc = MetricAccumulator()
    per_image = []
    pairs = pair_files(folder)
    if limit and limit < len(pairs):
        pairs = pairs[:: len(pairs) // limit][:limit]
    seconds = 0.0
    for image_path, mask_path in tqdm(pairs, desc=desc, mininterval=5):
        image, truth = read_rgb(image_path), read_mask(mask_path)
        t0 = time.perf_counter()
        alpha = predict(image)
        seconds += time.perf_counter() - t0
        metrics = per_image_metrics(torch.from_numpy(alpha)[None], torch.from_numpy(truth)[None])
        acc.update(metrics)
        per_image.append((float(metrics["iou"]), image_path, alpha))
    return {**acc.means(), "s_per_image": seconds / max(1, len(pairs))}, per_image


def worst_grid(per_image: list[tuple[float, Path, np.ndarray]], path: Path, count: int = 8, height: int = 200) -> None:
    """Rows of input | truth | predicted alpha | cutout on a checkerboard for the lowest-IoU images."""
    rows = []
    for iou, image_path, alpha in sorted(per_image, key=lambda t: t[0])[:count]:
        image = read_rgb(image_path)
        truth = read_mask(image_path.parent.parent / "masks" / f"{image_path.stem}.png")
        h, w = alpha.shape
        yy, xx = np.mgrid[0:h, 0:w]
        checker = np.where(((yy // 16 + xx // 16) % 2)[..., None] == 0, 200, 255).astype(np.float32)
        cutout = (image * alpha[..., None] + checker * (1 - alpha[..., None])).astype(np.uint8)
        tiles = [image, *(np.repeat((m * 255).astype(np.uint8)[..., None], 3, 2) for m in (truth, alpha)), cutout]
        row = np.concatenate([cv2.resize(t, (round(w * height / h), height)) for t in tiles], axis=1)
        cv2.putText(
            row,
            f"{image_path.parent.parent.name}/{image_path.name} IoU {iou:.3f}",
            (5, 20),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (255, 0, 0),
            2,
        )
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    grid = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def format_table(results: dict[str, dict[str, dict]]) -> str:
    """Markdown table: one row per (model, subset)."""
    lines = ["| model | subset | IoU | precision | recall | F1 | MAE | n | s/image |", "|---" * 9 + "|"]
    for name, scores in results.items():
        for subset, m in scores.items():
            lines.append(
                f"| {name} | {subset} | {m['iou']:.4f} | {m['precision']:.4f} | {m['recall']:.4f} | "
                f"{m['f1']:.4f} | {m['mae']:.4f} | {m['n']} | {m.get('s_per_image', 0):.3f} |"
            )
    return "\n".join(lines)


def onnx_predictor(model: torch.nn.Module, threads: int) -> OnnxPredictor:
    """The model exported as the .mar packs it, in an onnxruntime session (the CPU server's path)."""
    with tempfile.TemporaryDirectory(prefix="shoeseg-eval-") as tmp:
        graph = export_onnx(model, Path(tmp) / ONNX_FILE, model.config.input_size)
        return OnnxPredictor(graph, threads)  # the session holds the graph; the file may go


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder with images/+masks/, or with subsets of them")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help=f"checkpoint (default {DEFAULT_WEIGHTS})")
    parser.add_argument("--out", default="reports/eval.json", help="JSON scores; the worst-cutouts PNG goes beside")
    parser.add_argument(
        "--peers",
        nargs="?",
        const="../shared/peers",
        default=None,
        help="also score the ONNX peers in this folder (default ../shared/peers)",
    )
    parser.add_argument("--limit", type=int, default=0, help="score only N evenly spaced images per subset")
    parser.add_argument("--threads", type=int, default=0, help="torch/onnxruntime threads (0: torch's default)")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation: average with the flipped image")
    parser.add_argument(
        "--quality", default="fast", help="the server's quality mode(s) to score, comma-separated: fast, best"
    )
    parser.add_argument(
        "--runtime", choices=("torch", "onnx"), default="torch", help="onnx: the CPU server's path (onnxruntime)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    folders = subsets(Path(args.data))
    model = load_model(args.weights)
    predictor = onnx_predictor(model, torch.get_num_threads()) if args.runtime == "onnx" else None
    qualities = [q.strip() for q in args.quality.split(",") if q.strip()]
    if not qualities or set(qualities) - set(QUALITIES):
        parser.error(f"--quality {args.quality!r}: give one or more of {', '.join(QUALITIES)}, comma-separated")
    results: dict[str, dict[str, dict]] = {}
    by_quality: dict[str, dict[str, dict]] = {}
    worst: list = []
    for quality in qualities:
        name = "resunet" if quality == "fast" else f"resunet quality={quality}"
        results[name] = by_quality[quality] = {}
        for subset, folder in folders.items():
            results[name][subset], per_image = score_subset(
                lambda image, q=quality: predict_alpha(model, image, args.tta, q, predictor),
                folder,
                f"{name} {subset}",
                args.limit,
            )
            worst += per_image if quality == qualities[0] else []
    report: dict = dict(by_quality[qualities[0]])
    report |= {f"quality_{q}": by_quality[q] for q in qualities[1:] if q != "fast"}
    if args.peers:
        from .peers import load_peers

        report["peers"] = {}
        for peer in load_peers(args.peers, threads=torch.get_num_threads()):
            scores = {s: score_subset(peer.predict, f, f"{peer.name} {s}", args.limit)[0] for s, f in folders.items()}
            results[peer.name] = report["peers"][peer.name] = scores
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    worst_grid(worst, out.with_name(out.stem + "_worst.png"))
    print(format_table(results))
    print(f"wrote {out} and {out.with_name(out.stem + '_worst.png')}")


if __name__ == "__main__":
    main()
