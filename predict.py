"""The seed's command line, kept working: cut out one photo or a folder, in-process (no server needed).

    python predict.py --image in.jpg --output out.png [--weights shoeseg/weights/resunet.pth]
    python predict.py --input-dir photos/ --output-dir cutouts/ [--mode rgb --bg '#f0f0f0' --crop --size 1200]

A thin wrapper of ``shoeseg remove`` (shoeseg/cli.py): the same pipeline and options, with the seed's
flag names (--mode is the server's ``output``). Folders are walked recursively; results that already
exist are skipped; failures are listed at the end and make the exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shoeseg.cli import add_option_flags, image_jobs, option_fields, run_jobs
from shoeseg.pipeline import OptionError, Remover, parse_options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="checkpoint (default: the shipped one)")
    parser.add_argument("--image", type=Path, help="one input photo")
    parser.add_argument("--output", type=Path, help="where --image's result goes")
    parser.add_argument("--input-dir", type=Path, help="folder of photos (recursive)")
    parser.add_argument("--output-dir", type=Path, help="where the folder's results go, same tree, .png/.webp")
    parser.add_argument("--device", default="auto")
    add_option_flags(parser, output_flag="--mode")
    args = parser.parse_args(argv)
    try:
        options = parse_options(option_fields(args))
    except OptionError as err:
        flag = "--mode" if err.option == "output" else f"--{err.option}"
        parser.error(f"{flag}: {err.message}")
    if bool(args.image) == bool(args.input_dir):
        parser.error("give either --image (with --output) or --input-dir (with --output-dir)")
    if args.input_dir and not args.output_dir:
        parser.error("--input-dir needs --output-dir")
    if args.image:
        jobs = image_jobs(args.image, args.output, options.suffix)
    else:
        jobs = image_jobs(args.input_dir, args.output_dir, options.suffix)
    remover = Remover(args.weights, args.device)
    return run_jobs(lambda data: remover.process(data, options), jobs, overwrite=bool(args.image))


if __name__ == "__main__":
    sys.exit(main())
