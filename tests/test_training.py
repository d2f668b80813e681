"""Loss, boundary weight map, CopyPaste, metrics and a tiny end-to-end training run."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from shoeseg.model import load_model
from shoeseg.training.augment import train_pipeline
from shoeseg.training.config import AugmentConfig, TrainConfig
from shoeseg.training.copy_paste import CopyPaste, paste_object
from shoeseg.training.losses import (
    boundary_weight_map,
    far_from_edge,
    fog_loss,
    segmentation_loss,
    weighted_cross_entropy,
    weighted_dice_loss,
)
from shoeseg.training.metrics import MetricAccumulator, per_image_metrics


def disc(size: int = 32, radius: int = 8) -> np.ndarray:
    mask = np.zeros((size, size), np.float32)
    cv2.circle(mask, (size // 2, size // 2), radius, 1.0, -1)
    return mask


def test_boundary_weight_peaks_on_contour_and_falls_off() -> None:
    weight = boundary_weight_map(disc(), w0=5, sigma=2)
    row = weight[16]
    edge = 16 + 8  # contour column on the centre row
    assert row[edge - 1 : edge + 1].max() == pytest.approx(row.max(), rel=0.05)
    assert row[16] == pytest.approx(1.0, abs=1e-2)  # centre, far inside
    assert row[0] < row[edge - 2] and row[16] < row[edge - 2]
    assert np.allclose(boundary_weight_map(np.zeros((8, 8))), 1.0)


def test_loss_small_for_right_answer_large_for_wrong() -> None:
    alpha = torch.from_numpy(disc())[None]
    weight = torch.from_numpy(boundary_weight_map(disc()))[None]
    good = torch.stack([-10 * (alpha - 0.5), 10 * (alpha - 0.5)], 1)
    bad = -good
    assert segmentation_loss(good, alpha, weight) < 0.05
    assert segmentation_loss(bad, alpha, weight) > 1.5
    assert weighted_dice_loss(good, alpha, weight) < weighted_dice_loss(bad, alpha, weight)


def test_boundary_weight_emphasises_edge_errors() -> None:
    alpha = torch.from_numpy(disc())[None]
    weight = torch.from_numpy(boundary_weight_map(disc(), w0=10, sigma=2))[None]
    logits = torch.stack([-10 * (alpha - 0.5), 10 * (alpha - 0.5)], 1)
    near_edge, far = logits.clone(), logits.clone()
    near_edge[:, :, 16, 23] *= -1  # flip one pixel at the contour
    far[:, :, 16, 16] *= -1  # flip one pixel at the centre
    assert weighted_cross_entropy(near_edge, alpha, weight) > 3 * weighted_cross_entropy(far, alpha, weight)


def test_metrics_known_values() -> None:
    alpha = torch.zeros(1, 4, 4)
    alpha[0, :2] = 1  # 8 foreground pixels
    prob = torch.zeros(1, 4, 4)
    prob[0, :1] = 1  # 4 predicted, all right
    prob[0, 3, 0] = 0.9  # 1 false positive
    m = per_image_metrics(prob, alpha)
    assert m["precision"].item() == pytest.approx(4 / 5)
    assert m["recall"].item() == pytest.approx(4 / 8)
    assert m["iou"].item() == pytest.approx(4 / 9)
    assert m["f1"].item() == pytest.approx(8 / 13)
    assert m["mae"].item() == pytest.approx((4 + 0.9) / 16)
    empty = per_image_metrics(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2))
    assert empty["iou"].item() == 1.0
    acc = MetricAccumulator()
    acc.update(m)
    acc.update(empty)
    assert acc.means()["n"] == 2 and acc.means()["iou"] == pytest.approx((4 / 9 + 1) / 2)


def test_paste_object_scale_place_and_soft_alpha() -> None:
    image = np.full((40, 20, 3), 200, np.uint8)
    alpha = np.zeros((40, 20), np.float32)
    alpha[10:30, 5:15] = 1.0
    alpha[10:30, 4] = 0.5  # a soft edge
    background = np.zeros((100, 100, 3), np.float32)
    out, new_alpha = paste_object(image, alpha, background, scale=0.5, centre=(0.5, 0.5))
    ys, xs = np.nonzero(new_alpha > 0.5)
    assert ys.max() - ys.min() + 1 == pytest.approx(50, abs=2)  # longest side = half the canvas
    assert abs((ys.min() + ys.max()) / 2 - 50) <= 2 and abs((xs.min() + xs.max()) / 2 - 50) <= 3
    assert ((new_alpha > 0.05) & (new_alpha < 0.95)).any()  # soft edge survives
    assert out[50, 50].tolist() == [200, 200, 200] and out[5, 5].tolist() == [0, 0, 0]


def test_copy_paste_transform_outputs_canvas_with_studio_background() -> None:
    transform = CopyPaste(None, canvas=64, scale=(0.5, 0.6), shadow_p=1.0, p=1.0, aspect_range=(1.3333, 1.3333))
    transform.set_random_seed(3)
    image = np.zeros((30, 30, 3), np.uint8)
    alpha = disc(30, 10)
    out = transform(image=image, mask=alpha)
    assert out["image"].shape == (64, 48, 3) and out["mask"].shape == (64, 48)
    background = out["image"][out["mask"] < 0.01]
    assert background.mean() > 150  # studio sweep is light
    assert out["image"][out["mask"] > 0.99].max() == 0  # the black object is pasted as is
    assert 0.05 < out["mask"].mean() < 0.5


def test_copy_paste_samples_backgrounds_by_file_name_weights(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "shop_1.jpg"), np.full((40, 40, 3), 255, np.uint8))
    for i in range(9):
        cv2.imwrite(str(tmp_path / f"street_{i}.jpg"), np.zeros((40, 40, 3), np.uint8))
    transform = CopyPaste(tmp_path, canvas=32, studio_p=0.0, p=1.0, background_weights={"shop_*": 0.9, "street_*": 0.1})
    transform.set_random_seed(0)
    image, alpha = np.zeros((20, 20, 3), np.uint8), disc(20, 4)
    white = [transform(image=image, mask=alpha)["image"][0, 0, 0] > 128 for _ in range(200)]
    assert 0.8 < np.mean(white) < 0.97  # 1 of 10 files, drawn 9 times in 10
    with pytest.raises(ValueError, match="no background file matches"):
        CopyPaste(tmp_path, background_weights={"shoe_*": 1.0})


def test_train_pipeline_letterboxes_with_black_bars_like_inference() -> None:
    aug = AugmentConfig(
        canvas=64,
        aspect_range=(0.5, 0.5),
        letterbox_p=1.0,
        affine_p=0,
        color_p=0,
        distort_p=0,
        noise_p=0,
        contrast_p=0,
        degrade_p=0,
        studio_p=1.0,
        paste_min_scale=0.3,
        paste_max_scale=0.3,
    )
    pipeline = train_pipeline(aug, 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), None, paste_p=1.0)
    pipeline.set_random_seed(1)
    out = pipeline(image=np.zeros((20, 20, 3), np.uint8), mask=disc(20, 6))
    image = out["image"]
    assert tuple(image.shape) == (3, 32, 32)
    assert image[:, :8].abs().max() == 0 and image[:, -8:].abs().max() == 0  # 2:1 canvas -> 8-px bars
    assert image[:, 8:24].mean() > 0.5  # the light studio sweep between the bars


def make_tiny_data(root: Path) -> None:
    """The folder layout of ../shared/data with a handful of synthetic images."""
    rng = np.random.default_rng(0)
    for sub in ("shoes/train", "backgrounds", "ecssd/images", "ecssd/masks", "bench/white/images", "bench/white/masks"):
        (root / sub).mkdir(parents=True)
    for i in range(4):
        rgba = np.zeros((96, 128, 4), np.uint8)
        cv2.ellipse(rgba, (64, 48), (40, 20), 0, 0, 360, (30, 60, 200, 255), -1)
        cv2.imwrite(str(root / f"shoes/train/{i}.webp"), rgba, [cv2.IMWRITE_WEBP_QUALITY, 101])
        cv2.imwrite(str(root / f"backgrounds/{i}.jpg"), rng.integers(0, 255, (80, 100, 3), dtype=np.uint8))
    cv2.imwrite(str(root / "shoes/train/opaque.webp"), np.zeros((20, 20, 3), np.uint8))  # no alpha: skipped
    for i in range(4):
        for folder in ("ecssd", "bench/white"):
            image = np.full((90, 120, 3), 240, np.uint8)
            mask = np.zeros((90, 120), np.uint8)
            cv2.rectangle(image, (30, 20), (80, 70), (20, 20, 20), -1)
            cv2.rectangle(mask, (30, 20), (80, 70), 255, -1)
            cv2.imwrite(str(root / f"{folder}/images/{i}.jpg"), image)
            cv2.imwrite(str(root / f"{folder}/masks/{i}.png"), mask)


@pytest.mark.slow  # a tiny training run and its resume (~20 s)
def test_tiny_training_run_writes_best_and_resumes(tmp_path: Path) -> None:
    from shoeseg.training.train import main

    data, out = tmp_path / "data", tmp_path / "run"
    make_tiny_data(data)
    config = Path(__file__).parents[1] / "shoeseg/training/configs/tiny.yaml"
    main(["--config", str(config), "--out", str(out), "--data", str(data)])
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and set(history[0]["val"]["white"]) >= {"iou", "precision", "recall", "f1", "mae"}
    model = load_model(out / "best_model.pth")
    assert model.config.encoder == "tf_efficientnet_lite0"
    main(["--config", str(config), "--out", str(out), "--data", str(data), "--resume", "--epochs", "2"])
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2]
    assert "resumed from" in (out / "train.log").read_text()


@pytest.mark.slow  # evaluation in both quality modes (~20 s)
def test_evaluate_writes_scores_and_worst_grid(tmp_path: Path) -> None:
    from evaluation.evaluate import main as evaluate
    from shoeseg.model import build_model, save_checkpoint
    from shoeseg.training.ship import main as ship
    from tests.serving_helpers import TINY

    data = tmp_path / "data"
    make_tiny_data(data)
    save_checkpoint(tmp_path / "raw.pth", build_model(TINY))
    ship([str(tmp_path / "raw.pth"), str(tmp_path / "ship.pth")])
    out = tmp_path / "scores.json"
    evaluate(["--data", str(data / "bench"), "--weights", str(tmp_path / "ship.pth"), "--out", str(out)])
    scores = json.loads(out.read_text())
    assert set(scores) == {"white"}
    assert scores["white"]["n"] == 4 and 0 <= scores["white"]["iou"] <= 1
    grid = cv2.imread(str(tmp_path / "scores_white_worst.png"))  # one grid per subset
    assert grid is not None and grid.shape[0] == 4 * 200
    args = ["--data", str(data / "bench"), "--weights", str(tmp_path / "ship.pth"), "--out", str(out)]
    evaluate([*args, "--quality", "fast,best"])
    both = json.loads(out.read_text())
    assert both["white"] == scores["white"] | {"s_per_image": both["white"]["s_per_image"]}
    assert set(both["quality_best"]) == {"white"} and both["quality_best"]["white"]["n"] == 4
    with pytest.raises(SystemExit):
        evaluate([*args, "--quality", "fast,good"])


def test_composite_set_pastes_each_cutout_with_its_mask(tmp_path: Path) -> None:
    from shoeseg.training.composite_set import main as composite_set

    make_tiny_data(tmp_path)
    for backgrounds in (["--backgrounds", str(tmp_path / "backgrounds" / "[01].jpg")], ["--studio"]):
        out = tmp_path / "check" / backgrounds[0]
        composite_set(
            ["--cutouts", str(tmp_path / "shoes/train"), *backgrounds, "--out", str(out), "--scale", "0.5,0.5"]
        )
        images, masks = sorted((out / "images").iterdir()), sorted((out / "masks").iterdir())
        assert [p.stem for p in images] == [p.stem for p in masks] == ["0", "1", "2", "3"]  # opaque.webp skipped
        image, mask = cv2.imread(str(images[0])), cv2.imread(str(masks[0]), cv2.IMREAD_GRAYSCALE)
        assert image.shape[:2] == mask.shape and 720 <= max(mask.shape) <= 1024
        ys, xs = np.nonzero(mask >= 128)
        assert abs(max(np.ptp(ys), np.ptp(xs)) + 1 - 0.5 * min(mask.shape)) <= 3  # the ellipse at half the short side
        inside = image[mask >= 250].astype(int)  # the ellipse's colour (BGR 30, 60, 200) under the mask
        assert np.abs(inside.mean(0) - (30, 60, 200)).max() < 8
    with pytest.raises(SystemExit):
        composite_set(["--cutouts", str(tmp_path / "shoes/train"), "--out", str(tmp_path / "x")])


def test_cutouts_without_alpha_are_skipped(tmp_path: Path) -> None:
    from shoeseg.training.data import cutout_files

    make_tiny_data(tmp_path)
    assert sorted(p.stem for p in cutout_files(tmp_path / "shoes/train")) == ["0", "1", "2", "3"]


def _cutout(shape: str, colour: int, side: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A grey-level ``colour`` object on a transparent canvas: rgb (side, side, 3) uint8, alpha (side, side)."""
    alpha = np.zeros((side, side), np.uint8)
    centre, radius = (side // 2, side // 2), side // 3
    cv2.circle(alpha, centre, radius, 255, -1)
    if shape in ("ring", "c"):
        cv2.circle(alpha, centre, radius // 2, 0, -1)  # the ring's hole: enclosed background
    if shape == "c":
        alpha[side // 2 - 4 : side // 2 + 4, side // 2 :] = 0  # a slot to the border opens it: not enclosed
    return np.full((side, side, 3), colour, np.uint8), alpha.astype(np.float32) / 255


def test_cutout_traits_tell_pale_and_holed_cutouts() -> None:
    from shoeseg.training.data import cutout_traits

    assert cutout_traits(*_cutout("ring", 240)) == (True, True)
    assert cutout_traits(*_cutout("ring", 240, side=900)) == (True, True)  # measured on a downsized copy
    assert cutout_traits(*_cutout("disc", 40)) == (False, False)
    assert cutout_traits(*_cutout("c", 240)) == (True, False)
    assert cutout_traits(*_cutout("ring", 90)) == (False, True)
    assert cutout_traits(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32)) == (False, False)


def test_cutout_sampling_draws_pale_and_holed_cutouts_more_often(tmp_path: Path) -> None:
    from shoeseg.training.data import cutout_sampling_p

    paths = []
    for name, (shape, colour) in {
        "white_ring": ("ring", 240),
        "dark_disc": ("disc", 40),
        "dark_ring": ("ring", 40),
    }.items():
        rgb, alpha = _cutout(shape, colour)
        paths.append(tmp_path / f"{name}.png")
        cv2.imwrite(str(paths[-1]), np.dstack([rgb, (alpha * 255).astype(np.uint8)]))
    assert cutout_sampling_p(paths, 1.0, 1.0) is None  # uniform: the dataset keeps its plain draw
    np.testing.assert_allclose(cutout_sampling_p(paths, 3.0, 2.0), np.array([6.0, 1.0, 2.0]) / 9)
    np.testing.assert_allclose(cutout_sampling_p(paths, 1.0, 4.0), np.array([4.0, 1.0, 4.0]) / 9)


@pytest.mark.slow  # a tiny training run (~20 s)
def test_fit_minutes_cuts_the_epochs_and_the_schedule_to_the_budget(tmp_path: Path) -> None:
    from shoeseg.training.train import main

    data, out = tmp_path / "data", tmp_path / "run"
    make_tiny_data(data)
    config = Path(__file__).parents[1] / "shoeseg/training/configs/tiny.yaml"
    # a budget far below one epoch's time: the run stops after the first epoch instead of running five
    main(["--config", str(config), "--out", str(out), "--data", str(data), "--epochs", "5", "--fit-minutes", "1e-6"])
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1]
    assert "1 epochs fit in --fit-minutes" in (out / "train.log").read_text()


@pytest.mark.slow  # three tiny training epochs (~45 s)
def test_fit_minutes_never_plans_more_epochs_than_the_config_asks(tmp_path: Path) -> None:
    from shoeseg.training.train import main

    data, out = tmp_path / "data", tmp_path / "run"
    make_tiny_data(data)
    config = Path(__file__).parents[1] / "shoeseg/training/configs/tiny.yaml"
    # a budget of hours for a run of seconds: the plan (made after epochs 1 and 2) stays at the 3 epochs asked
    main(["--config", str(config), "--out", str(out), "--data", str(data), "--epochs", "3", "--fit-minutes", "600"])
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2, 3]
    assert "fit in --fit-minutes" not in (out / "train.log").read_text()


@pytest.mark.slow  # two torchrun processes (~35 s)
def test_torchrun_two_processes_train_in_step(tmp_path: Path) -> None:
    """DDP through the same entry point (gloo on the CPU): both ranks train, rank 0 validates and saves, and
    the time budget (--fit-minutes / --max-minutes) stops both ranks after the same epoch."""
    import os
    import subprocess
    import sys

    data, out = tmp_path / "data", tmp_path / "run"
    make_tiny_data(data)
    config = Path(__file__).parents[1] / "shoeseg/training/configs/tiny.yaml"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "shoeseg.training.train", "--config", str(config), "--out", str(out), "--data", str(data)]
    command += ["--epochs", "3", "--fit-minutes", "1e-6"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=Path(__file__).parents[1], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1]
    assert load_model(out / "best_model.pth").config.encoder == "tf_efficientnet_lite0"


def test_a_stage_config_inherits_its_base_and_writes_only_what_changes(tmp_path: Path) -> None:
    (tmp_path / "parent.yaml").write_text(
        "name: parent\nlr: 0.1\nbatch_size: 4\ndata: {val: [bench/white], val_limit: 8}\naugment: {rotate: 5}\n"
    )
    (tmp_path / "child.yaml").write_text("base: parent.yaml\nname: child\nlr: 0.01\ndata: {val_limit: 0}\n")
    child = TrainConfig.load(tmp_path / "child.yaml")
    assert (child.name, child.lr, child.batch_size) == ("child", 0.01, 4)
    assert (child.data.val, child.data.val_limit, child.augment.rotate) == (["bench/white"], 0, 5)
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\nname: loop\n")
    with pytest.raises(ValueError, match="leads back to itself"):
        TrainConfig.load(tmp_path / "loop.yaml")
    shipped = Path(__file__).parents[1] / "shoeseg/training/configs"
    gpu, stage4 = TrainConfig.load(shipped / "stage3_gpu.yaml"), TrainConfig.load(shipped / "stage4_gpu.yaml")
    assert (stage4.image_size, stage4.batch_size, stage4.augment) == (512, 16, gpu.augment)
    assert stage4.lr == gpu.lr / 2


def test_resume_pack_is_smaller_and_loads_back_as_fp32(tmp_path: Path) -> None:
    from shoeseg.training.ship import pack_resume

    model = torch.nn.Linear(64, 64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 64)).sum().backward()
    optimizer.step()
    full = {"state_dict": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3, "best_iou": 0.9}
    torch.save(full, tmp_path / "last.pth")
    pack_resume(tmp_path / "last.pth", tmp_path / "small.pth")
    assert (tmp_path / "small.pth").stat().st_size < 0.6 * (tmp_path / "last.pth").stat().st_size
    small = torch.load(tmp_path / "small.pth", weights_only=False)
    assert small["epoch"] == 3 and small["state_dict"]["weight"].dtype == torch.float16
    again = torch.optim.AdamW(model.parameters(), lr=1e-3)
    again.load_state_dict(small["optimizer"])
    state = next(iter(again.state.values()))
    assert state["exp_avg_sq"].dtype == torch.float32 and float(state["step"]) == 1.0
    assert (state["exp_avg_sq"] > 0).all()  # bf16 keeps Adam's tiny second moments (fp16 would zero them)


def test_fog_loss_counts_undecided_alpha_away_from_the_edge_only() -> None:
    alpha = torch.zeros(1, 64, 64)
    alpha[:, 16:48, 16:48] = 1.0
    far = far_from_edge(alpha, 4)
    assert far[0, 32, 32] == 1 and far[0, 2, 2] == 1 and far[0, 16, 32] == 0 and far[0, 13, 32] == 0
    decided = torch.stack([1 - alpha, alpha], 1) * 20 - 10  # logits: sure of the true mask everywhere
    soft_edge = decided.clone()
    soft_edge[:, :, 14:18, 16:48] = 0.0  # undecided only in a 4 px band along the top edge
    fog = decided.clone()
    fog[:, :, 28:36, 28:36] = 0.0  # a half-transparent blob inside the object, far from its edge
    assert fog_loss(decided, alpha, 4) < 1e-3
    assert fog_loss(soft_edge, alpha, 4) < 1e-3
    assert fog_loss(fog, alpha, 4) > 0.02


def test_frozen_encoder_blocks_keep_their_weights_while_the_rest_trains() -> None:
    from shoeseg.model import ModelConfig, build_model
    from shoeseg.training.trainer import freeze, frozen_encoder_modules

    model = build_model(ModelConfig.from_dict({"encoder": "tf_efficientnet_lite0", "input_size": 64}))
    model.train()
    frozen = frozen_encoder_modules(model, 2)
    freeze(frozen)
    assert frozen_encoder_modules(model, 0) == []
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    optimizer.step()
    stem = model.encoder.model.conv_stem.weight
    assert not stem.requires_grad and torch.equal(stem, before["encoder.model.conv_stem.weight"])
    assert not model.encoder.model.bn1.training  # frozen statistics too
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith("decoder") for n in changed)
    assert not any(n.startswith(("encoder.model.blocks.0.", "encoder.model.blocks.1.")) for n in changed)
