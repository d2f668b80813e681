"""Readiness check for a container probe: exit 0 when the model has a READY worker, else 1.

TorchServe's /ping says "Healthy" before the model has loaded, so Kubernetes' readiness probe asks the
management API instead (``GET /models/{model}``): ``python -m shoeseg.serving.readiness [--url URL] [--model M]``.
Standard library only, one request, a short timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

from shoeseg.constants import DEFAULT_MANAGEMENT_URL, MODEL_NAME


def ready_workers(management_url: str, model: str = MODEL_NAME, timeout: float = 3) -> int:
    """How many of ``model``'s workers report READY (0 when the server or the model is not up)."""
    try:
        with urllib.request.urlopen(f"{management_url.rstrip('/')}/models/{model}", timeout=timeout) as response:
            described = json.loads(response.read())
    except (OSError, urllib.error.URLError, ValueError):
        return 0
    return sum(w.get("status") == "READY" for entry in described for w in entry.get("workers", []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=DEFAULT_MANAGEMENT_URL, help="management API (default %(default)s)")
    parser.add_argument("--model", default=MODEL_NAME)
    args = parser.parse_args(argv)
    count = ready_workers(args.url, args.model)
    print(f"{args.model}: {count} READY worker(s) at {args.url}")
    return 0 if count else 1


if __name__ == "__main__":
    sys.exit(main())
