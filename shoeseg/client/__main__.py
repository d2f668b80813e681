"""Cut out one photo with the running ShoeSeg server.

    python -m shoeseg.client shoe.jpg -o cutout.png                  # REST, http://127.0.0.1:8080
    python -m shoeseg.client shoe.jpg -o cutout.png --grpc           # gRPC, 127.0.0.1:7070
    python -m shoeseg.client shoe.jpg -o white.webp -O output=rgb -O format=webp -O size=1200

Exit status: 0 written, 2 the server refused the image (message says why), 1 any other failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from shoeseg.client.client import (
    DEFAULT_GRPC,
    DEFAULT_URL,
    MODEL,
    ImageRejectedError,
    ServiceError,
    predict_grpc,
    predict_rest,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shoeseg.client", description="Background removal client")
    parser.add_argument("image", type=Path, help="input photo (JPEG, PNG, WebP, BMP, TIFF, GIF)")
    parser.add_argument(
        "-o", "--output", type=Path, help="file to write (default: <image>_cutout.png, .webp with format=webp)"
    )
    parser.add_argument(
        "-O",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a request option, repeatable: output=mask, bg=f5f5f5, crop=true, margin=5%%, format=webp, size=1200, "
        "threshold=0.5, refine=true, tta=true, quality=best (the server checks them and names a bad one)",
    )
    parser.add_argument("--grpc", action="store_true", help="use gRPC instead of REST")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"REST inference address (default {DEFAULT_URL})")
    parser.add_argument("--target", default=DEFAULT_GRPC, help=f"gRPC inference host:port (default {DEFAULT_GRPC})")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--timeout", type=float, default=120, help="seconds per attempt (default 120)")
    parser.add_argument("--retries", type=int, default=2, help="retries on 503/unavailable (default 2)")
    parser.add_argument(
        "--token", default=os.environ.get("SHOESEG_TOKEN"), help="inference key when the server has token auth on"
    )
    args = parser.parse_args(argv)
    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"--option {item!r}: write KEY=VALUE, e.g. --option output=mask")
        options[key.strip()] = value.strip()
    suffix = ".webp" if options.get("format", "").lower() == "webp" else ".png"
    output = args.output or args.image.with_name(f"{args.image.stem}_cutout{suffix}")
    try:
        data = args.image.read_bytes()
    except OSError as err:
        print(f"error: cannot read {args.image}: {err}", file=sys.stderr)
        return 1
    common = {
        "model": args.model,
        "timeout": args.timeout,
        "retries": args.retries,
        "token": args.token,
        "options": options or None,
    }
    start = time.perf_counter()
    try:
        if args.grpc:
            result = predict_grpc(data, target=args.target, **common)
        else:
            result = predict_rest(data, url=args.url, **common)
    except ImageRejectedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ServiceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(result)
    via = f"gRPC {args.target}" if args.grpc else f"REST {args.url}"
    print(f"wrote {output} ({len(result) / 1e3:.0f} kB) in {time.perf_counter() - start:.2f} s via {via}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
