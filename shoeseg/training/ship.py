"""Turn a training checkpoint into the shipped one (fp16 tensors, config and metrics kept), or a run's
``last.pth`` into a small resumable copy that can be committed and resumed in a later session.

    python -m shoeseg.training.ship runs/stage2/best_model.pth shoeseg/weights/resunet.pth
    python -m shoeseg.training.ship --resume runs/stage6_real/last.pth checkpoints/stage6_real/last.pth
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from shoeseg.model import load_model, read_checkpoint, save_checkpoint


def shrink(value: Any, dtype: torch.dtype) -> Any:
    """Float tensors of more than one element in ``value`` (nested dicts / lists) as ``dtype``; the rest
    (Adam's step counts, integers) as they are."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() and value.numel() > 1 else value
    if isinstance(value, dict):
        return {k: shrink(v, dtype) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(shrink(v, dtype) for v in value)
    return value


def pack_resume(source: Path, target: Path) -> None:
    """``last.pth`` (~80 MB: fp32 weights and Adam moments) -> ~40 MB: weights fp16, Adam moments bf16 (the
    second moment underflows in fp16). ``--resume`` loads it as it is: both are cast back to fp32 on load."""
    state = torch.load(source, map_location="cpu", weights_only=False)
    state["state_dict"] = shrink(state["state_dict"], torch.float16)
    state["optimizer"] = shrink(state["optimizer"], torch.bfloat16)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, target)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="checkpoint written by training.train (best_model.pth, or last.pth)")
    parser.add_argument("target", help="where to write the fp16 checkpoint, e.g. shoeseg/weights/resunet.pth")
    parser.add_argument("--resume", action="store_true", help="source is a last.pth: write a small resumable copy")
    args = parser.parse_args(argv)
    if args.resume:
        pack_resume(Path(args.source), Path(args.target))
        print(f"wrote {args.target} ({Path(args.target).stat().st_size / 1e6:.0f} MB) from {args.source}")
        return
    meta = read_checkpoint(args.source)["meta"]
    save_checkpoint(args.target, load_model(args.source), meta, half=True)
    print(f"wrote {args.target} (fp16) from {args.source}: {meta}")


if __name__ == "__main__":
    main()
