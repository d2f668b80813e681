"""Peer models (u2netp, MODNet as ONNX) run the way their READMEs say, for side-by-side scores."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

DEFAULT_PEERS_DIR = "../shared/peers"


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
        raise NotImplementedError

    def predict(self, image: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: self.preprocess(image)})[0]
        alpha = np.squeeze(out).astype(np.float32)
        if self.name == "u2netp":  # min-max normalised output
            alpha = (alpha - alpha.min()) / max(float(alpha.max() - alpha.min()), 1e-6)
        h, w = image.shape[:2]
        return np.clip(cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)


class U2NetP(OnnxPeer):
    """320x320, pixels / max, ImageNet mean/std."""

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        x = cv2.resize(image, (320, 320), interpolation=cv2.INTER_AREA).astype(np.float32)
        x = x / max(float(x.max()), 1e-6)
        x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
        return x.transpose(2, 0, 1)[None].astype(np.float32)


class MODNet(OnnxPeer):
    """Longest side 512, both sides multiples of 32, (x - 127.5) / 127.5."""

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        scale = 512 / max(h, w)
        new_h, new_w = (max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32))
        x = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA).astype(np.float32)
        return ((x - 127.5) / 127.5).transpose(2, 0, 1)[None].astype(np.float32)


def load_peers(peers_dir: str | Path = DEFAULT_PEERS_DIR, threads: int = 2) -> list[OnnxPeer]:
    """The peers found in ``peers_dir`` (u2netp.onnx, modnet.onnx)."""
    peers_dir = Path(peers_dir)
    found = []
    for cls, name in ((U2NetP, "u2netp"), (MODNet, "modnet")):
        path = peers_dir / f"{name}.onnx"
        if path.exists():
            found.append(cls(name, path, threads))
    if not found:
        raise FileNotFoundError(f"no peer models (u2netp.onnx, modnet.onnx) in {peers_dir}")
    return found
