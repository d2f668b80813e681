"""The shipped recipe as a chain of stage configs: `make train` runs it, and the shipped checkpoint records it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from shoeseg.constants import DEFAULT_WEIGHTS
from shoeseg.training.chain import checkpoint_chain, config_chain, differences, init_stage
from shoeseg.training.config import TrainConfig
from shoeseg.training.train import main as train

REPO = Path(__file__).parents[1]
CONFIGS = REPO / "shoeseg/training/configs"
SHIPPED_STAGE = CONFIGS / "stage6_real.yaml"
SHIPPED_ORDER = ["stage1", "stage2", "stage3", "stage3_gpu", "stage4_gpu", "stage4_gpu_b", "stage6_real"]


def shipped_meta() -> dict:
    return torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)["meta"]


def test_init_names_the_stage_it_starts_from() -> None:
    assert init_stage("runs/stage3/best_model.pth") == "stage3"
    assert init_stage("/tmp/x/stage4_gpu/best_model.pth") == "stage4_gpu"
    assert init_stage("imagenet") is None and init_stage("shoeseg/weights/resunet.pth") is None


def test_the_shipped_stage_resolves_to_the_whole_chain() -> None:
    chain = config_chain(SHIPPED_STAGE)
    assert [s.config.name for s in chain] == SHIPPED_ORDER
    assert [s.path.stem for s in chain] == SHIPPED_ORDER
    assert chain[0].config.init == "imagenet"
    for before, stage in zip(chain, chain[1:]):
        assert init_stage(stage.config.init) == before.config.name
    # the repeated run is its own config: same recipe as stage4_gpu, from stage4_gpu's best
    first, second = chain[4].config, chain[5].config  # stage4_gpu, stage4_gpu_b
    assert (
        differences(first.to_dict() | {"name": second.name, "init": second.init, "epochs": second.epochs}, second) == []
    )


def test_the_shipped_checkpoint_records_the_configs_its_chain_resolves_to() -> None:
    """Each stage's recorded resolved config equals what its config file resolves to today (a setting added
    since must hold its default, which is what the run did)."""
    recorded = checkpoint_chain(shipped_meta())
    chain = config_chain(SHIPPED_STAGE)
    assert [r["stage"] for r in recorded] == SHIPPED_ORDER
    for record, stage in zip(recorded, chain):
        assert record["config"] is not None, record["stage"]
        assert differences(record["config"], stage.config) == [], record["stage"]
    assert [r["epoch"] for r in recorded] == [None, 15, 7, 4, 2, 6, 11]  # the epoch each run kept (stage1's unknown)


def test_make_train_runs_the_chain_in_order_and_ships_its_last_stage() -> None:
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    printed = subprocess.run(
        ["make", "-n", "train", "RUNS=R", "DATA_ROOT=D", "GPU_MINUTES="],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    runs = [line for line in printed.splitlines() if "-m shoeseg.training.train " in line]
    configs = [Path(re.search(r"--config (\S+)", line)[1]) for line in runs]
    assert configs == [s.path.relative_to(REPO) for s in config_chain(SHIPPED_STAGE)]
    for line, config, previous in zip(runs, configs, [None, *configs]):
        assert f"--out R/{config.stem} " in line and "--resume" in line and "--data D" in line
        init = re.search(r"--init (\S+)", line)
        assert (init[1] if init else None) == (f"R/{previous.stem}/best_model.pth" if previous else None)
    assert "-m shoeseg.training.ship R/stage6_real/best_model.pth shoeseg/weights/resunet.pth" in printed
    assert "stage5_studio" not in printed  # the next stage is not part of the shipped recipe


def test_the_next_stage_starts_from_the_shipped_one() -> None:
    chain = config_chain(CONFIGS / "stage5_studio.yaml")
    assert [s.config.name for s in chain] == [*SHIPPED_ORDER[:-1], "stage5_studio"]  # from stage4_gpu_b's best


def test_differences_name_the_changed_settings() -> None:
    config = TrainConfig.load(CONFIGS / "stage3.yaml")
    recorded = config.to_dict()
    del recorded["grad_clip"], recorded["augment"]["flip_p"]  # a run from before these were settings
    assert differences(recorded, config) == []
    recorded["lr"], recorded["augment"]["rotate"], recorded["gone"] = 1.0, 5, 1
    assert differences(recorded, config) == [
        "augment.rotate: 5 -> 15",
        "lr: 1.0 -> 0.0002",
        "gone: recorded but no longer a setting",
    ]


def test_dry_run_prints_the_chain_and_trains_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    train(["--config", str(SHIPPED_STAGE), "--dry-run"])
    printed = capsys.readouterr().out
    assert [line.split()[1] for line in printed.splitlines() if re.match(r"\s*\d+\. ", line)] == SHIPPED_ORDER
    assert "resolved stage6_real:" in printed and "  epochs: 24" in printed and "  fog_weight: 0.5" in printed
    train(["--config", str(CONFIGS / "stage5_studio.yaml"), "--init", str(DEFAULT_WEIGHTS), "--dry-run"])
    printed = capsys.readouterr().out  # from a checkpoint: its recorded chain comes first
    assert "(recorded) stage4_gpu_b epoch 6" in printed and " 1. stage5_studio" in printed
    with pytest.raises(SystemExit):
        train(["--config", str(SHIPPED_STAGE)])  # training needs --out


def test_every_shipped_config_loads() -> None:
    for path in CONFIGS.glob("*.yaml"):
        config = TrainConfig.load(path)
        assert config.name == path.stem


@pytest.mark.slow
def test_training_records_its_config_and_chain_and_resumes_old_last_files(tmp_path: Path) -> None:
    """best_model.pth records the resolved config and the init's chain; a last.pth without them (written
    before they were recorded: state_dict, optimizer, scheduler, epoch, best_iou, history) still resumes."""
    from shoeseg.model import ModelConfig, build_model, save_checkpoint
    from tests.test_training import make_tiny_data

    tiny = CONFIGS / "tiny.yaml"
    data, out, parent = tmp_path / "data", tmp_path / "run", tmp_path / "parent.pth"
    make_tiny_data(data)
    meta = {"stage": "parent", "epoch": 3, "config": {"name": "parent"}, "chain": [{"stage": "root", "epoch": 1}]}
    save_checkpoint(parent, build_model(ModelConfig.from_dict(TrainConfig.load(tiny).model)), meta)
    args = ["--config", str(tiny), "--out", str(out), "--data", str(data), "--init", str(parent)]
    train(args)
    best = torch.load(out / "best_model.pth", weights_only=True)["meta"]
    assert best["config"]["init"] == str(parent) and best["config"]["grad_clip"] == 5.0
    assert [r["stage"] for r in checkpoint_chain(best)] == ["root", "parent", "tiny"]
    last = torch.load(out / "last.pth", weights_only=False)
    assert last["chain"] == best["chain"]
    old_format = {k: last[k] for k in ("state_dict", "optimizer", "scheduler", "epoch", "best_iou", "history")}
    torch.save(old_format, out / "last.pth")
    train([*args, "--resume", "--epochs", "2"])
    assert "resumed from" in (out / "train.log").read_text()
    assert torch.load(out / "last.pth", weights_only=False)["chain"] == best["chain"]  # from the init again
