"""Train one stage: ``python -m shoeseg.training.train --config shoeseg/training/configs/stage1.yaml --out runs/s1``.

Resumes from ``<out>/last.pth`` with ``--resume``; keeps ``<out>/best_model.pth`` (best mean validation
IoU). ``--dry-run`` prints the stage's resolved chain (the stages its init leads back to) and exits.
Multi-GPU: ``torchrun --nproc_per_node N -m shoeseg.training.train ...`` (DDP). See docs/training.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .chain import config_chain, describe, init_records
from .config import TrainConfig
from .trainer import RunOptions, Trainer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="stage YAML, e.g. shoeseg/training/configs/stage1.yaml")
    parser.add_argument("--out", help="run folder for last.pth, best_model.pth, train.log (required to train)")
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
    parser.add_argument("--dry-run", action="store_true", help="print the resolved stage chain and exit")
    return parser


def dry_run(args: argparse.Namespace) -> None:
    """Print the chain of stage configs (oldest first) and the last stage's resolved settings."""
    chain = config_chain(args.config, args.init, args.epochs)
    first_init = chain[0].config.init
    print(describe(chain, init_records(first_init)))


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dry_run:
        dry_run(args)
        return
    if not args.out:
        parser.error("--out is required to train (only --dry-run goes without)")
    cfg = TrainConfig.load(args.config)
    if args.init:
        cfg.init = args.init
    if args.epochs:
        cfg.epochs = args.epochs
    options = RunOptions(Path(args.out), args.data, args.resume, args.max_minutes, args.fit_minutes)
    Trainer(cfg, options).run()


if __name__ == "__main__":
    main()
