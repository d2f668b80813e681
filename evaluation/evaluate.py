"""Score a checkpoint on ``images/`` + ``masks/`` folders at each image's own resolution.

``python -m evaluation.evaluate --data ../shared/data/bench [--weights ckpt] [--out scores.json] [--peers]``
prints a table, writes ``{subset: {iou, precision, recall, f1, mae, biou, hole_recall, fog, hole_n, n, s_per_image}}``
(per-image means; ``hole_recall`` over the ``hole_n`` images whose true mask encloses >= 200 background pixels;
with ``--peers`` also ``"peers": {name: {subset: ...}}``), and beside it two grids of the worst cutouts per
subset (by IoU: ``<out>_<subset>_worst.png``, by Boundary IoU: ``<out>_<subset>_worst_biou.png``) and every
image's scores (``<out>_images.json``). ``fog`` is in % of pixels (``metrics.fog``); ``--matte`` as served.
``--tta`` scores the test-time augmented prediction (the server's ``tta=true``); ``--quality fast,best``
scores each of the server's ``quality`` modes (``"quality_best": {subset: ...}`` in the JSON for ``best``; the
subsets at the top level are the first mode's). ``<out>_confidence.json``, ``{model: {subset | pooled:
{definition: ...}}}``, says how well each per-cutout confidence (``CONFIDENCES``) ranks our cutouts: its Spearman
correlation with Boundary IoU and the share of bad cutouts (IoU < 0.95) among the least confident 10 %.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from shoeseg.constants import DEFAULT_WEIGHTS, RUNTIMES
from shoeseg.model import load_model
from shoeseg.model.inference import best_sides, cutout_confidence
from shoeseg.model.sessions import make_predictor
from shoeseg.pipeline.cutout import Predictors, predict_alpha
from shoeseg.pipeline.matte import decisive_matte
from shoeseg.pipeline.options import MATTES, QUALITIES
from shoeseg.training.data import pair_files, read_mask, read_rgb
from shoeseg.training.metrics import (
    BAD_IOU,
    FLAG_SHARE,
    MetricAccumulator,
    boundary_iou,
    flagged_catch,
    per_image_metrics,
    spearman,
    structure_metrics,
)

from .peers import DEFAULT_PEER_DIRS

Predictor = Callable[[np.ndarray], np.ndarray]
Confidence = Callable[[np.ndarray], float]  # (H, W) predicted alpha -> how sure the cutout is (higher: surer)


def boundary_agreement(alpha: np.ndarray, low: float = 0.1, high: float = 0.9) -> float:
    """(H, W) alpha -> Boundary IoU of the masks at ``alpha >= high`` and ``alpha >= low`` in [0, 1]: 1 when
    every edge is decided, low when the contour wanders with the threshold (a half-believed strap gap or
    reflection moves it by its whole width)."""
    return boundary_iou(alpha >= high, alpha >= low)


def served_band_confidence(alpha: np.ndarray) -> float:
    """``cutout_confidence`` (the served X-Cutout-Confidence) x ``boundary_agreement``: the first ranks the
    clearly bad cutouts lowest (undecided area per object pixel), the second orders the rest by how sure their
    contour is. Full bench, shipped weights, default pass: Spearman with Boundary IoU 0.74 / 0.72 (scene /
    white) where the served one alone gives 0.60 / 0.51, the same bad cutouts caught but one."""
    return cutout_confidence(alpha) * boundary_agreement(alpha)


# Per-cutout confidence definitions scored against Boundary IoU (ours only): ``served`` is what the server
# answers with (``model.inference.cutout_confidence``), the others are candidates for it.
CONFIDENCES: dict[str, Confidence] = {
    "served": cutout_confidence,
    "band": boundary_agreement,
    "served_x_band": served_band_confidence,
}
GRIDS = {"iou": "worst.png", "biou": "worst_biou.png"}  # ranking -> file name suffix beside the JSON
GRID_ROWS = 8


def served_alpha(
    model: torch.nn.Module, image: np.ndarray, tta: bool, quality: str, predictor: Predictors, matte: str
) -> np.ndarray:
    """The alpha the server answers with for ``image`` (H, W, 3): the model's, through the matte it asks for."""
    alpha = predict_alpha(model, image, tta, quality, predictor)
    return decisive_matte(image, alpha) if matte == "decisive" else alpha


def subsets(folder: Path) -> dict[str, Path]:
    """``folder`` itself when it holds ``images/``, else each child that does."""
    if (folder / "images").is_dir():
        return {folder.name: folder}
    found = {p.name: p for p in sorted(folder.iterdir()) if (p / "images").is_dir()}
    if not found:
        raise FileNotFoundError(f"{folder} holds no images/ + masks/ folder (nor subsets of them)")
    return found


@dataclass
class Scored:
    """One image's scores: ``metrics`` (iou, biou, hole_recall, ... as floats), ``confidence`` (definition ->
    value, ours only) and its alpha as uint8 (kept only while it may still be among the worst)."""

    path: Path
    metrics: dict[str, float]
    confidence: dict[str, float] = field(default_factory=dict)
    alpha: np.ndarray | None = None


def score_subset(
    predict: Predictor,
    folder: Path,
    desc: str,
    limit: int = 0,
    confidences: dict[str, Confidence] | None = None,
    keep: int = 0,
) -> tuple[dict, list[Scored]]:
    """Per-image mean metrics over one subset (``limit``: evenly spaced subsample) and each image's ``Scored``.

    ``confidences``: definitions to compute on each predicted alpha; ``keep``: the alphas of the ``keep``
    lowest by IoU and by Boundary IoU stay in their ``Scored`` (for ``worst_grid``), the others are dropped.
    """
    acc = MetricAccumulator()
    scored = []
    pairs = pair_files(folder)
    if limit and limit < len(pairs):
        pairs = pairs[:: len(pairs) // limit][:limit]
    seconds = 0.0
    for image_path, mask_path in tqdm(pairs, desc=desc, mininterval=5):
        image, truth = read_rgb(image_path), read_mask(mask_path)
        t0 = time.perf_counter()
        alpha = predict(image)
        seconds += time.perf_counter() - t0
        prob, true = torch.from_numpy(alpha)[None], torch.from_numpy(truth)[None]
        metrics = per_image_metrics(prob, true) | structure_metrics(prob, true)
        acc.update(metrics)
        confidence = {name: fn(alpha) for name, fn in (confidences or {}).items()}
        as_uint8 = np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8) if keep else None
        scored.append(Scored(image_path, {k: float(v[0]) for k, v in metrics.items()}, confidence, as_uint8))
    worst = {id(s) for key in ("iou", "biou") for s in sorted(scored, key=lambda s: s.metrics[key])[:keep]}
    for s in scored:
        s.alpha = s.alpha if id(s) in worst else None
    return {**acc.means(), "s_per_image": seconds / max(1, len(pairs))}, scored


def worst_grid(scored: list[Scored], path: Path, key: str = "iou", count: int = 8, height: int = 200) -> None:
    """Rows of input | truth | predicted alpha | cutout on a checkerboard for the ``count`` images lowest by
    ``key`` (``iou`` or ``biou``) among those whose alpha was kept."""
    rows = []
    kept = [s for s in scored if s.alpha is not None]
    for s in sorted(kept, key=lambda s: s.metrics[key])[:count]:
        image = read_rgb(s.path)
        truth = read_mask(s.path.parent.parent / "masks" / f"{s.path.stem}.png")
        alpha = s.alpha.astype(np.float32) / 255
        h, w = alpha.shape
        yy, xx = np.mgrid[0:h, 0:w]
        checker = np.where(((yy // 16 + xx // 16) % 2)[..., None] == 0, 200, 255).astype(np.float32)
        cutout = (image * alpha[..., None] + checker * (1 - alpha[..., None])).astype(np.uint8)
        tiles = [image, *(np.repeat((m * 255).astype(np.uint8)[..., None], 3, 2) for m in (truth, alpha)), cutout]
        row = np.concatenate([cv2.resize(t, (round(w * height / h), height)) for t in tiles], axis=1)
        label = f"{s.path.parent.parent.name}/{s.path.name} IoU {s.metrics['iou']:.3f} BIoU {s.metrics['biou']:.3f}"
        cv2.putText(row, label, (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 0, 0), 2)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    grid = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def confidence_summary(scored: list[Scored]) -> dict[str, dict]:
    """Per confidence definition: Spearman with per-image Boundary IoU and the share of bad cutouts
    (IoU < ``BAD_IOU``) among the least confident ``FLAG_SHARE`` (``metrics.flagged_catch``)."""
    if not scored or not scored[0].confidence:
        return {}
    biou = np.array([s.metrics["biou"] for s in scored])
    bad = np.array([s.metrics["iou"] < BAD_IOU for s in scored])
    summary = {}
    for name in scored[0].confidence:
        confidence = np.array([s.confidence[name] for s in scored])
        caught, flagged = flagged_catch(confidence, bad, FLAG_SHARE)
        rho = spearman(confidence, biou)
        summary[name] = {
            "spearman_biou": None if np.isnan(rho) else rho,
            "caught": None if np.isnan(caught) else caught,
            "caught_max": min(1.0, flagged / bad.sum()) if bad.any() else None,  # more bad than flagged: < 1
            "bad_n": int(bad.sum()),
            "flagged_n": flagged,
        }
    return summary


def _cell(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(results: dict[str, dict[str, dict]]) -> str:
    """Markdown table: one row per (model, subset)."""
    head = (
        "| model | subset | IoU | precision | recall | F1 | MAE | BIoU | hole recall | fog % | hole n | n | s/image |"
    )
    lines = [head, "|---" * 13 + "|"]
    for name, scores in results.items():
        for subset, m in scores.items():
            lines.append(
                f"| {name} | {subset} | {m['iou']:.4f} | {m['precision']:.4f} | {m['recall']:.4f} | "
                f"{m['f1']:.4f} | {m['mae']:.4f} | {_cell(m.get('biou'))} | {_cell(m.get('hole_recall'), 3)} | "
                f"{_cell(m.get('fog'), 2)} | {m.get('hole_n', '-')} | {m['n']} | {m.get('s_per_image', 0):.3f} |"
            )
    return "\n".join(lines)


def format_confidence(summary: dict[str, dict[str, dict]]) -> str:
    """Markdown table: one row per (mode, subset or pooled, confidence definition)."""
    lines = [
        f"| model | subset | confidence | Spearman vs BIoU | bad (IoU < {BAD_IOU}) caught in lowest "
        f"{FLAG_SHARE:.0%} (at most) | bad n | flagged n |",
        "|---" * 7 + "|",
    ]
    for name, by_subset in summary.items():
        for subset, by_definition in by_subset.items():
            for definition, c in by_definition.items():
                caught = "-" if c["caught"] is None else f"{c['caught']:.0%} ({c['caught_max']:.0%})"
                lines.append(
                    f"| {name} | {subset} | {definition} | {_cell(c['spearman_biou'], 3)} | {caught} | "
                    f"{c['bad_n']} | {c['flagged_n']} |"
                )
    return "\n".join(lines)


def image_row(scored: Scored, subset: str, model: str) -> dict:
    """One line of ``<out>_images.json``: the image's metrics and confidences."""
    row = {"model": model, "subset": subset, "image": scored.path.name}
    row |= {k: (None if np.isnan(v) else round(v, 6)) for k, v in scored.metrics.items()}
    return row | {f"confidence_{k}": round(v, 6) for k, v in scored.confidence.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder with images/+masks/, or with subsets of them")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help=f"checkpoint (default {DEFAULT_WEIGHTS})")
    parser.add_argument("--out", default="reports/eval.json", help="JSON scores; the worst-cutouts PNGs go beside")
    parser.add_argument(
        "--peers",
        nargs="*",
        default=None,
        metavar="DIR",
        help=f"also score the ONNX peers found in these folders (default: {' '.join(DEFAULT_PEER_DIRS)})",
    )
    parser.add_argument("--limit", type=int, default=0, help="score only N evenly spaced images per subset")
    parser.add_argument("--threads", type=int, default=0, help="torch/onnxruntime threads (0: torch's default)")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation: average with the flipped image")
    parser.add_argument(
        "--quality", default="fast", help="the server's quality mode(s) to score, comma-separated: fast, best"
    )
    parser.add_argument(
        "--matte",
        choices=MATTES,
        default="decisive",
        help="the served alpha (decisive, the default) or the model's own (soft): the server's matte option",
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="auto",
        help="auto (default): the server's path (on a CPU the int8 graph when the weights are calibrated)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    folders = subsets(Path(args.data))
    model = load_model(args.weights)
    qualities = [q.strip() for q in args.quality.split(",") if q.strip()]
    if not qualities or set(qualities) - set(QUALITIES):
        parser.error(f"--quality {args.quality!r}: give one or more of {', '.join(QUALITIES)}, comma-separated")
    sides = best_sides(model.config.input_size) if "best" in qualities else [model.config.input_size]
    predictor = {side: make_predictor(model, Path(args.weights), args.runtime, side) for side in sides}
    results: dict[str, dict[str, dict]] = {}
    by_quality: dict[str, dict[str, dict]] = {}
    confidence: dict[str, dict[str, dict]] = {}
    images: list[dict] = []
    worst: dict[str, list[Scored]] = {subset: [] for subset in folders}
    for quality in qualities:
        name = "resunet" if quality == "fast" else f"resunet quality={quality}"
        results[name], by_quality[quality], confidence[name] = {}, {}, {}
        pooled: list[Scored] = []
        for subset, folder in folders.items():
            scores, scored = score_subset(
                lambda image, q=quality: served_alpha(model, image, args.tta, q, predictor, args.matte),
                folder,
                f"{name} {subset}",
                args.limit,
                CONFIDENCES,
                keep=GRID_ROWS if quality == qualities[0] else 0,
            )
            results[name][subset] = by_quality[quality][subset] = scores
            confidence[name][subset] = confidence_summary(scored)
            pooled += scored
            worst[subset] += scored if quality == qualities[0] else []
            images += [image_row(s, subset, name) for s in scored]
        if len(folders) > 1:
            confidence[name]["pooled"] = confidence_summary(pooled)
    report: dict = dict(by_quality[qualities[0]])
    report |= {f"quality_{q}": by_quality[q] for q in qualities[1:] if q != "fast"}
    if args.peers is not None:
        from .peers import load_peers

        report["peers"] = {}
        for peer in load_peers(args.peers or DEFAULT_PEER_DIRS, threads=torch.get_num_threads()):
            scores = {}
            for subset, folder in folders.items():
                scores[subset], scored = score_subset(peer.predict, folder, f"{peer.name} {subset}", args.limit)
                images += [image_row(s, subset, peer.name) for s in scored]
            results[peer.name] = report["peers"][peer.name] = scores
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    side = {}
    for subset, scored in worst.items():
        for key, suffix in GRIDS.items():
            side[subset, key] = out.with_name(f"{out.stem}_{subset}_{suffix}")
            worst_grid(scored, side[subset, key], key, GRID_ROWS)
    images_path = out.with_name(f"{out.stem}_images.json")
    images_path.write_text(json.dumps(images, indent=1))
    confidence_path = out.with_name(f"{out.stem}_confidence.json")
    confidence_path.write_text(json.dumps(confidence, indent=2))
    print(format_table(results))
    print()
    print(format_confidence(confidence))
    written = [out, *side.values(), images_path, confidence_path]
    print(f"wrote {', '.join(str(p) for p in written)}")


if __name__ == "__main__":
    main()
