"""Build the model archive and run one TorchServe in its own folder: start, wait until it serves, stop.

Shared by the Makefile (``python -m shoeseg.serving.server mar|start|stop``) and the integration tests. Each
server lives in a ``home`` folder holding its rendered config, TMPDIR (pid file, worker sockets, the
unpacked .mar), logs and console output, so several servers never meet.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from shoeseg.constants import (
    DEFAULT_GRPC_INFERENCE_PORT,
    DEFAULT_HOST,
    DEFAULT_INFERENCE_URL,
    DEFAULT_MANAGEMENT_URL,
    DEFAULT_METRICS_PORT,
    DEFAULT_WEIGHTS,
    MODEL_NAME,
    PACKAGE_DIR,
    REPO_ROOT,
    is_png,
)

WORKER_PACKAGES = ("model", "pipeline", "handler")  # what a TorchServe worker imports

_PATH_KEYS = ("metrics_config", "model_store", "workflow_store", "plugins_path")


class ServerError(RuntimeError):
    """TorchServe did not start, serve, or stop as expected; the message carries the log tail."""


def _bin(name: str) -> str:
    """A console script of this interpreter's environment (falls back to PATH)."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise ServerError(f"{name} not found; run `make venv` first")
    return found


def read_properties(path: Path) -> dict[str, str]:
    """A Java .properties file as a dict (``key=value`` lines, ``#`` comments)."""
    props = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    return props


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (held together while picking)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port_overrides() -> dict[str, str]:
    """config.properties overrides putting every API of one server on its own free port of 127.0.0.1."""
    ports = free_ports(5)
    return {
        "inference_address": f"http://127.0.0.1:{ports[0]}",
        "management_address": f"http://127.0.0.1:{ports[1]}",
        "metrics_address": f"http://127.0.0.1:{ports[2]}",
        "grpc_inference_port": str(ports[3]),
        "grpc_management_port": str(ports[4]),
    }


def build_mar(
    weights: Path,
    export_dir: Path,
    model_name: str = MODEL_NAME,
    config_file: Path = REPO_ROOT / "model-config.yaml",
    onnx: bool = True,
) -> Path:
    """Pack ``weights`` + the parts of the ``shoeseg`` package a worker runs (model, pipeline, handler; not
    training, the client or the shipped weights) + the ONNX graph of ``weights`` for CPU workers, unless
    ``onnx`` is False, into ``export_dir/<model_name>.mar``.

    torch-model-archiver copies a directory given in --extra-files by its contents, so the package is
    staged under one folder whose contents (``shoeseg/`` and the graph) land at the archive root, which
    TorchServe puts on the worker's sys.path.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise ServerError(f"weights {weights} not found: train a model (make train) or pass WEIGHTS=path")
    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shoeseg-mar-") as tmp:
        src = Path(tmp, "src")
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for part in WORKER_PACKAGES:
            shutil.copytree(PACKAGE_DIR / part, src / "shoeseg" / part, ignore=ignore)
        for module in ("__init__.py", "constants.py"):
            shutil.copy2(PACKAGE_DIR / module, src / "shoeseg" / module)
        if onnx:  # the CPU worker's graph, exported once here instead of compiled at every worker start
            from shoeseg.model.sessions import pack_graphs

            pack_graphs(weights, src)
        cmd = [
            _bin("torch-model-archiver"),
            "--model-name", model_name,
            "--version", "1.0",
            "--serialized-file", str(weights),
            "--handler", str(PACKAGE_DIR / "handler" / "resunet_handler.py"),
            "--extra-files", str(src),
            "--config-file", str(config_file),
            "--export-path", str(export_dir),
            "--force",
        ]  # fmt: skip
        # The archiver stages files in $TMPDIR/<model_name>: give it a private TMPDIR.
        env = {**os.environ, "TMPDIR": tmp}
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if result.returncode:
            raise ServerError(f"torch-model-archiver failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return export_dir / f"{model_name}.mar"


@dataclass
class Server:
    """One TorchServe instance and the folder it lives in."""

    home: Path
    props: dict[str, str]

    @property
    def tmpdir(self) -> Path:
        return self.home / "tmp"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def config(self) -> Path:
        return self.home / "config.properties"

    @property
    def inference_url(self) -> str:
        return self.props.get("inference_address", DEFAULT_INFERENCE_URL)

    @property
    def management_url(self) -> str:
        return self.props.get("management_address", DEFAULT_MANAGEMENT_URL)

    @property
    def metrics_url(self) -> str:
        return self.props.get("metrics_address", f"http://{DEFAULT_HOST}:{DEFAULT_METRICS_PORT}")

    @property
    def grpc_inference(self) -> str:
        host = self.props.get("grpc_inference_address", "127.0.0.1")
        return f"{host}:{self.props.get('grpc_inference_port', DEFAULT_GRPC_INFERENCE_PORT)}"

    def env(self) -> dict[str, str]:
        """Environment that pins TorchServe's temp files (pid file, sockets) and logs to ``home``."""
        return {
            **os.environ,
            "TMPDIR": str(self.tmpdir),  # python launcher: pid file .model_server.pid
            "TEMP": str(self.tmpdir),  # java.io.tmpdir: worker sockets, unpacked model archives
            "LOG_LOCATION": str(self.logs),
            "METRICS_LOCATION": str(self.logs),
        }

    def pid(self) -> int | None:
        """PID of this server's frontend (java) if it is running."""
        try:
            pid = int((self.tmpdir / ".model_server.pid").read_text().strip())
            proc = psutil.Process(pid)
            return pid if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE else None
        except (FileNotFoundError, ValueError, psutil.Error):
            return None

    @property
    def console(self) -> Path:
        """The frontend's stdout/stderr (startup errors such as a port in use only show here)."""
        return self.logs / "console.log"

    def key(self, kind: str) -> str | None:
        """The ``kind`` ("inference", "management") token from the key_file.json TorchServe writes in ``home``
        when token authorization is on; None when it is off or the file is not there yet."""
        try:
            return json.loads((self.home / "key_file.json").read_text())[kind]["key"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def model_log(self) -> str:
        """All of the worker's log lines so far, oldest first: TorchServe's log4j rolls model_log.log over at
        midnight and at 100 MB into model_log.<date>.log.gz, so a long run's early lines are not in it."""
        rolled = sorted(self.logs.glob("model_log.*.gz"), key=lambda path: path.stat().st_mtime)
        parts = [gzip.decompress(path.read_bytes()).decode(errors="replace") for path in rolled]
        current = self.logs / "model_log.log"
        if current.exists():
            parts.append(current.read_text(errors="replace"))
        return "".join(parts)

    def log_tail(self, lines: int = 12) -> str:
        """The last lines of the console output and of TorchServe's logs, for error messages."""
        parts = []
        for path in (self.console, self.logs / "ts_log.log", self.logs / "model_log.log"):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(parts) or f"(no logs under {self.logs})"

    def ports_in_use(self) -> list[str]:
        """The configured listen addresses that something already holds."""
        addresses = [self.inference_url, self.management_url, self.metrics_url, self.grpc_inference]
        grpc_host = self.props.get("grpc_management_address", "127.0.0.1")
        addresses.append(f"{grpc_host}:{self.props.get('grpc_management_port', '7071')}")
        busy = []
        for address in addresses:
            host, port = address.split("://")[-1].rsplit(":", 1)
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine, a listener is not
                try:
                    probe.bind((host, int(port)))
                except OSError:
                    busy.append(address)
        return busy


def render_config(base: Path, dest: Path, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Copy ``base`` to ``dest`` with relative paths resolved against ``base``'s folder and ``overrides``."""
    base = Path(base).resolve()
    props = read_properties(base)
    for key in _PATH_KEYS:
        if key in props and not Path(props[key]).is_absolute():
            props[key] = str(base.parent / props[key])
    props.update(overrides or {})
    dest.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# rendered from {base} by serving/server.py", *(f"{k}={v}" for k, v in props.items())]
    dest.write_text("\n".join(lines) + "\n")
    return props


def server_at(home: Path) -> Server:
    """The server whose folder is ``home`` (its rendered config, if any, gives the addresses)."""
    home = Path(home).resolve()
    config = home / "config.properties"
    return Server(home, read_properties(config) if config.exists() else {})


def start(
    home: Path,
    model_store: Path,
    config: Path = REPO_ROOT / "config.properties",
    models: str = f"{MODEL_NAME}={MODEL_NAME}.mar",
    overrides: dict[str, str] | None = None,
) -> Server:
    """Start TorchServe in the background (``--ncs``, model given on the command line); returns at once."""
    home = Path(home).resolve()
    existing = server_at(home)
    if existing.pid():
        raise ServerError(f"a TorchServe already runs from {home} (pid {existing.pid()}); stop it first (make stop)")
    server = Server(home, {})
    if server.logs.exists():  # keep the previous run's logs apart, so error tails show this run only
        shutil.rmtree(home / "logs.prev", ignore_errors=True)
        server.logs.rename(home / "logs.prev")
    for folder in (server.tmpdir, server.logs):
        folder.mkdir(parents=True, exist_ok=True)
    server.props = render_config(config, server.config, overrides)
    busy = server.ports_in_use()
    if busy:
        holders = "stop the server holding them (make stop) or change"
        raise ServerError(f"already in use: {', '.join(busy)}; {holders} {config}")
    cmd = [
        _bin("torchserve"), "--start", "--ncs",
        "--ts-config", str(server.config),
        "--model-store", str(Path(model_store).resolve()),
        "--models", models,
    ]  # fmt: skip
    # Never pipe TorchServe's output: the java frontend inherits it and would block on a full pipe.
    with open(server.console, "ab") as console:
        launcher = subprocess.run(
            cmd, cwd=home, env=server.env(), stdin=subprocess.DEVNULL, stdout=console,
            stderr=subprocess.STDOUT, start_new_session=True, check=False, timeout=60,
        )  # fmt: skip
    if launcher.returncode or not server.pid():
        raise ServerError(f"torchserve --start failed (exit {launcher.returncode})\n{server.log_tail()}")
    return server


def http_request(
    url: str, data: bytes | None = None, timeout: float = 30, token: str | None = None
) -> tuple[int, bytes]:
    # An explicit binary content type: urllib's default (form-urlencoded) makes TorchServe parse a form.
    headers = {"Content-Type": "application/octet-stream"} if data is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def probe_image(width: int = 96, height: int = 64) -> bytes:
    """A small generated PNG (gradient with a dark ellipse) for readiness checks."""
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 200)], axis=-1).astype(np.uint8)
    rgb[((yy - height / 2) / (height / 3)) ** 2 + ((xx - width / 2) / (width / 3)) ** 2 < 1] = 30
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def worker_status(server: Server, model: str = MODEL_NAME) -> list[dict]:
    """The model's workers from the management API (``[]`` while it is not registered yet)."""
    try:
        status, body = http_request(
            f"{server.management_url}/models/{model}", timeout=10, token=server.key("management")
        )
    except (OSError, urllib.error.URLError):
        return []
    if status != 200:
        return []
    described = json.loads(body)
    return described[0].get("workers", []) if described else []


def wait_ready(server: Server, model: str = MODEL_NAME, timeout: float = 300) -> float:
    """Block until a worker is READY and a real prediction returns a PNG; returns the seconds waited."""
    start_time = time.monotonic()
    deadline = start_time + timeout
    stage = "the model's worker to be READY"
    while time.monotonic() < deadline:
        if not server.pid():
            raise ServerError(f"TorchServe exited while waiting for {stage}\n{server.log_tail()}")
        if any(w.get("status") == "READY" for w in worker_status(server, model)):
            stage = "a first prediction to succeed"
            try:
                url, key = f"{server.inference_url}/predictions/{model}", server.key("inference")
                status, body = http_request(url, probe_image(), timeout=60, token=key)
            except (OSError, urllib.error.URLError):
                status, body = 0, b""
            if status == 200 and is_png(body):
                return time.monotonic() - start_time
            if status not in (0, 503):  # 503: worker busy or restarting, anything else will not heal
                raise ServerError(f"probe prediction failed: HTTP {status} {body[:500]!r}\n{server.log_tail()}")
        time.sleep(0.5)
    raise ServerError(f"TorchServe not ready after {timeout:.0f} s waiting for {stage}\n{server.log_tail()}")


def stop(home: Path, timeout: float = 60) -> int:
    """Stop the server of ``home`` and wait until its frontend and workers are gone; returns how many."""
    server = server_at(home)
    pid = server.pid()
    if pid is None:
        return 0
    frontend = psutil.Process(pid)
    procs = [frontend, *frontend.children(recursive=True)]
    with open(server.console, "ab") as console:
        subprocess.run(
            [_bin("torchserve"), "--stop"], cwd=server.home, env=server.env(), stdin=subprocess.DEVNULL,
            stdout=console, stderr=subprocess.STDOUT, check=False, timeout=60,
        )  # fmt: skip
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:  # only this server's own processes, found through its pid file
        proc.kill()
    psutil.wait_procs(alive, timeout=10)
    (server.tmpdir / ".model_server.pid").unlink(missing_ok=True)
    return len(procs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shoeseg.serving.server", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mar = sub.add_parser("mar", help="build the model archive")
    mar.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    mar.add_argument("--export", type=Path, default=REPO_ROOT / "model_store")
    run = sub.add_parser("start", help="start TorchServe and wait until it serves")
    run.add_argument("--model-store", type=Path, default=REPO_ROOT / "model_store")
    run.add_argument("--config", type=Path, default=REPO_ROOT / "config.properties")
    run.add_argument("--timeout", type=float, default=300)
    run.add_argument("--restart", action="store_true", help="stop a server already running from --home first")
    for p in (run, sub.add_parser("stop", help="stop the server started from --home")):
        p.add_argument("--home", type=Path, default=REPO_ROOT / ".serve")
    args = parser.parse_args(argv)
    try:
        if args.command == "mar":
            path = build_mar(args.weights, args.export)
            print(f"built {path} ({path.stat().st_size / 1e6:.1f} MB) from {args.weights}")
        elif args.command == "start":
            t0 = time.monotonic()
            if args.restart and stop(args.home):
                print(f"stopped the TorchServe already running from {args.home}")
            server = start(args.home, args.model_store, args.config)
            try:
                wait_ready(server, timeout=args.timeout)
            except ServerError:
                stop(args.home)
                raise
            print(
                f"TorchServe ready in {time.monotonic() - t0:.1f} s (pid {server.pid()}, logs {server.logs})\n"
                f"  REST     {server.inference_url}/predictions/{MODEL_NAME}\n"
                f"  gRPC     {server.grpc_inference}\n"
                f"  metrics  {server.metrics_url}/metrics\n"
                "  stop with: make stop"
            )
        else:
            count = stop(args.home)
            print(f"TorchServe stopped ({count} processes)" if count else f"no TorchServe running from {args.home}")
    except ServerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
