"""Turn a training checkpoint into the shipped one: fp16 tensors, config and metrics kept.

``python -m shoeseg.training.ship runs/stage2/best_model.pth shoeseg/weights/resunet.pth``
"""

from __future__ import annotations

import argparse

from shoeseg.model import load_model, read_checkpoint, save_checkpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="checkpoint written by training.train (best_model.pth)")
    parser.add_argument("target", help="where to write the fp16 checkpoint, e.g. shoeseg/weights/resunet.pth")
    args = parser.parse_args(argv)
    meta = read_checkpoint(args.source)["meta"]
    save_checkpoint(args.target, load_model(args.source), meta, half=True)
    print(f"wrote {args.target} (fp16) from {args.source}: {meta}")


if __name__ == "__main__":
    main()
