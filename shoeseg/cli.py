"""The ``shoeseg`` command: cut out photos in-process, run the server, calibrate int8 ranges.

    shoeseg remove shoe.jpg -o cutout.png                  # one file (default: shoe_cutout.png beside it)
    shoeseg remove photos/ -o cutouts/ --output rgb --bg '#f0f0f0' --crop --size 1200
    shoeseg remove - < shoe.jpg > cutout.png               # stdin -> stdout
    shoeseg serve                                          # TorchServe on the shipped model (make serve)
    shoeseg stop
    shoeseg calibrate --weights ckpt.pth            # int8 ranges beside a checkpoint (make calibrate)

``remove`` takes the server's request options as flags with the same names, values and errors. A folder
is walked recursively into the same tree under ``-o``; results that already exist are skipped, so an
interrupted run picks up where it stopped; failures are listed at the end and make the exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from shoeseg.constants import DEFAULT_LOW_CONFIDENCE, DEFAULT_WEIGHTS, REPO_ROOT, RUNTIMES

if TYPE_CHECKING:
    from shoeseg.pipeline.remover import Cutout

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
OPTION_DEST = "option_"  # argparse names of the option flags, apart from the command's own (--output in predict.py)


def add_option_flags(parser: argparse.ArgumentParser, output_flag: str = "--output") -> None:
    """Every request option of the option table as a flag (``--shadow-opacity`` for ``shadow_opacity``)."""
    from shoeseg.pipeline.options import OPTIONS

    group = parser.add_argument_group("cutout options (the server's request options)")
    for spec in OPTIONS:
        flag = output_flag if spec.name == "output" else f"--{spec.name.replace('_', '-')}"
        allowed = spec.allowed.replace("%", "%%")  # argparse formats help with %
        if spec.switch:
            group.add_argument(flag, dest=OPTION_DEST + spec.name, action="store_true", help=f"{spec.name}=true")
        else:
            group.add_argument(flag, dest=OPTION_DEST + spec.name, metavar=spec.name.upper(), help=allowed)


def option_fields(args: argparse.Namespace) -> dict[str, str]:
    """The option flags given -> the server's option fields (switches as "true")."""
    from shoeseg.pipeline.options import OPTIONS, option_fields

    given = {spec.name: getattr(args, OPTION_DEST + spec.name) for spec in OPTIONS}
    return option_fields({spec.name: given[spec.name] or None if spec.switch else given[spec.name] for spec in OPTIONS})


def image_jobs(source: Path, target: Path | None, suffix: str) -> list[tuple[Path, Path]]:
    """(input, output) pairs: a file -> ``target`` (a folder: inside it; None: ``<stem>_cutout`` beside it);
    a folder -> every image below it, into the same tree under ``target`` (None: ``<folder>_cutout``)."""
    if source.is_dir():
        root = target or source.with_name(f"{source.name}_cutout")
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        return [(p, (root / p.relative_to(source)).with_suffix(suffix)) for p in files]
    if target is None:
        return [(source, source.with_name(f"{source.stem}_cutout{suffix}"))]
    if target.is_dir():
        return [(source, target / f"{source.stem}{suffix}")]
    return [(source, target)]


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` so an interrupted run never leaves a partial file that a resumed run would skip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def run_jobs(
    cutout: Callable[[bytes], Cutout],
    jobs: Sequence[tuple[Path, Path]],
    overwrite: bool = False,
    low_confidence: float = DEFAULT_LOW_CONFIDENCE,
    confidences: dict[Path, float] | None = None,
) -> int:
    """Cut out each job's input into its output (existing outputs skipped unless ``overwrite``), a progress
    bar on stderr, a ``CHECK`` line for each cutout less confident than ``low_confidence`` (the ones worth a
    look); returns the exit status: 0, or 1 when any image failed (each listed). ``confidences``, when given,
    receives each written output's confidence."""
    from tqdm import tqdm

    from shoeseg.pipeline.image_io import InvalidImageError

    todo = [(s, t) for s, t in jobs if overwrite or not t.exists()]
    failures, unsure = [], 0
    bar = tqdm(todo, desc="cutouts", unit="image", disable=len(todo) < 2, file=sys.stderr)
    for source, target in bar:
        try:
            result = cutout(source.read_bytes())
            write_atomically(target, result.data)
        except (InvalidImageError, OSError) as err:
            failures.append(f"{source}: {getattr(err, 'message', err)}")
            continue
        if confidences is not None:
            confidences[target] = result.confidence
        if result.confidence < low_confidence:
            unsure += 1
            bar.write(f"CHECK {target} (confidence {result.confidence:.3f})", file=sys.stderr)
        elif len(todo) == 1:
            print(f"{target} (confidence {result.confidence:.3f})", file=sys.stderr)
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    skipped = len(jobs) - len(todo)
    print(
        f"{len(todo) - len(failures)} written, {len(failures)} failed, {skipped} skipped (already there); "
        f"{unsure} to check (confidence < {low_confidence})",
        file=sys.stderr,
    )
    return 1 if failures else 0


def remove_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from shoeseg.pipeline import InvalidImageError, OptionError, Remover, parse_options

    try:
        options = parse_options(option_fields(args))
    except OptionError as err:
        parser.error(f"--{err.option}: {err.message}")
    source = str(args.input)
    if source != "-" and not Path(source).exists():
        parser.error(f"{source}: no such file or folder")
    remover = Remover(args.weights, args.device, args.runtime)

    def cutout(data: bytes) -> Cutout:
        return remover.process(data, options)

    if source == "-":
        try:
            result = cutout(sys.stdin.buffer.read())
        except InvalidImageError as err:
            print(f"error: {err.message}", file=sys.stderr)
            return 1
        data = result.data
        print(f"confidence {result.confidence:.3f}", file=sys.stderr)
        if args.out and str(args.out) != "-":
            write_atomically(Path(args.out), data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        return 0
    if args.report and not (Path(source).is_dir() and args.out):
        parser.error("--report writes OUT/index.html for a folder: give a folder and -o OUT")
    jobs = image_jobs(Path(source), Path(args.out) if args.out else None, options.suffix)
    if not jobs:
        parser.error(f"{source}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it")
    confidences: dict[Path, float] = {}
    status = run_jobs(cutout, jobs, args.overwrite, args.low_confidence, confidences)
    if args.report:
        write_report(jobs, confidences, Path(source), Path(args.out), args.low_confidence, options.bg)
    return status


def write_report(
    jobs: Sequence[tuple[Path, Path]],
    confidences: dict[Path, float],
    source: Path,
    out: Path,
    low_confidence: float,
    bg: tuple[int, int, int, int] | None,
) -> None:
    """``--report``: OUT/index.html over every job whose cutout exists (see ``shoeseg.review_page``)."""
    from shoeseg.review_page import ReviewEntry, write_review_page

    entries = [ReviewEntry(s, t, confidences.get(t)) for s, t in jobs if t.exists()]
    backdrop = "#ffffff" if bg is None else f"rgba({bg[0]}, {bg[1]}, {bg[2]}, {bg[3] / 255:.3f})"
    page = write_review_page(entries, source, out, low_confidence, backdrop)
    print(f"review page: {page}", file=sys.stderr)


def serve_command(args: argparse.Namespace) -> int:
    from shoeseg.serving import server

    home = args.home or REPO_ROOT / ".serve"
    store = args.model_store or REPO_ROOT / "model_store"
    code = server.main(["mar", "--weights", str(args.weights or DEFAULT_WEIGHTS), "--export", str(store)])
    if code:
        return code
    start = ["start", "--restart", "--home", str(home), "--model-store", str(store), "--timeout", str(args.timeout)]
    return server.main(start + (["--config", str(args.config)] if args.config else []))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoeseg", description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    remove = sub.add_parser("remove", help="cut out a photo, a folder of photos, or stdin", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    remove.set_defaults(subparser=remove)  # its usage line for errors
    remove.add_argument("input", help="an image file, a folder (recursive), or - for stdin")
    remove.add_argument("-o", "--out", help="output file or folder (- or none with stdin: stdout)")
    remove.add_argument("--weights", help=f"checkpoint (default: the shipped {DEFAULT_WEIGHTS.name})")
    remove.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1, ...")
    remove.add_argument("--runtime", default="auto", choices=RUNTIMES,
                        help="auto: onnxruntime on CPU (what the CPU server runs), PyTorch on CUDA; "
                        "onnx-int8: the calibrated int8 graph")  # fmt: skip
    remove.add_argument("--overwrite", action="store_true", help="redo results that already exist")
    remove.add_argument("--low-confidence", type=float, default=DEFAULT_LOW_CONFIDENCE, metavar="C",
                        help="list cutouts less confident than C as CHECK lines (default %(default)s)")  # fmt: skip
    remove.add_argument("--report", action="store_true",
                        help="with a folder: also write OUT/index.html, every photo beside its cutout, least "
                        "confident first (self-contained, offline)")  # fmt: skip
    add_option_flags(remove)
    serve = sub.add_parser("serve", help="start TorchServe on the model in the background (what `make serve` does)")
    serve.add_argument("--weights", help="checkpoint to serve (default: the shipped one)")
    serve.add_argument("--home", type=Path, help="the server's folder: config, logs, pid (default .serve/)")
    serve.add_argument("--model-store", type=Path, help="where the .mar is built (default model_store/)")
    serve.add_argument("--config", type=Path, help="config.properties (default: the checkout's)")
    serve.add_argument("--timeout", type=float, default=300, help="seconds to wait for a READY worker")
    stop = sub.add_parser("stop", help="stop the server that `shoeseg serve` started")
    stop.add_argument("--home", type=Path, help="the server's folder (default .serve/)")
    sub.add_parser("calibrate", help="int8 activation ranges for a checkpoint, from training composites "
                   "(see `shoeseg calibrate --help`)", add_help=False)  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["calibrate"]:  # its own parser, with its own --help
        from shoeseg.training import calibrate

        calibrate.main(argv[1:])
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "remove":
        return remove_command(args, args.subparser)
    if args.command == "serve":
        return serve_command(args)
    from shoeseg.serving import server

    return server.main(["stop", "--home", str(args.home or REPO_ROOT / ".serve")])


if __name__ == "__main__":
    sys.exit(main())
