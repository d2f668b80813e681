"""A stage's chain: the stages whose best checkpoints it starts from, oldest first.

A stage's ``init`` of the form ``<runs>/<stage>/best_model.pth`` names the stage ``<stage>.yaml`` beside
its config, so ``stage4_gpu_b.yaml`` resolves to stage1 -> stage2 -> stage3 -> stage3_gpu -> stage4_gpu
-> stage4_gpu_b; ``imagenet``, ``scratch`` or any other path ends the chain. Checkpoints record the chain
they came from (``meta["config"]`` and ``meta["chain"]``, see ``stage_record``), so a checkpoint says
which resolved configs made it, and ``differences`` checks a config against such a record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import TrainConfig

STAGE_INIT = re.compile(r"(?:^|[/\\])(?P<stage>[^/\\]+)[/\\]best_model\.pth$")


@dataclass(frozen=True)
class Stage:
    """One link of a chain: the config file and what it resolves to (with the run's overrides)."""

    path: Path
    config: TrainConfig


def init_stage(init: str) -> str | None:
    """The stage an ``init`` value names (``runs/stage3/best_model.pth`` -> ``stage3``), else None."""
    match = STAGE_INIT.search(init)
    return match["stage"] if match else None


def config_chain(path: str | Path, init: str | None = None, epochs: int | None = None) -> list[Stage]:
    """``path``'s stage and, before it, the stages its ``init`` leads back to (oldest first).

    ``init`` / ``epochs``: the run's command-line overrides of the last stage. A config refers to at most
    one earlier stage, so the chain is a list; a loop is refused.
    """
    path = Path(path)
    config = TrainConfig.load(path)
    if init:
        config.init = init
    if epochs:
        config.epochs = epochs
    chain = [Stage(path, config)]
    while (name := init_stage(chain[0].config.init)) and (parent := chain[0].path.parent / f"{name}.yaml").is_file():
        if any(stage.path.resolve() == parent.resolve() for stage in chain):
            raise ValueError(f"{path}: the init chain leads back to {parent}")
        chain.insert(0, Stage(parent, TrainConfig.load(parent)))
    return chain


def stage_record(config: TrainConfig, epoch: int | None) -> dict[str, Any]:
    """What a checkpoint records of one stage: its name, the epoch kept and the resolved config."""
    return {"stage": config.name, "epoch": epoch, "config": config.to_dict()}


def checkpoint_chain(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """A checkpoint's whole recorded chain, its own stage last (config None where a stage predates recording)."""
    own = {"stage": meta.get("stage"), "epoch": meta.get("epoch"), "config": meta.get("config")}
    return [*meta.get("chain", []), own]


def init_records(init: str) -> list[dict[str, Any]]:
    """The chain an ``init`` checkpoint came from, to record in the checkpoints that start from it ([] for
    ``imagenet`` / ``scratch`` or a file that is not there)."""
    path = Path(init)
    if init in ("imagenet", "scratch") or not path.is_file():
        return []
    meta = torch.load(path, map_location="cpu", weights_only=True).get("meta") or {}
    return checkpoint_chain(meta)


def differences(recorded: dict[str, Any], config: TrainConfig) -> list[str]:
    """Where ``config`` differs from a recorded resolved config, as ``key: recorded -> now`` lines.

    A key the record lacks (a setting added after that run) must hold its default, which is what the run
    did; so adding a setting with a default keeps old records valid.
    """
    now, defaults = config.to_dict(), TrainConfig(name=config.name).to_dict()
    out = []
    for key, value in now.items():
        if isinstance(value, dict) and key in ("data", "augment"):
            before = recorded.get(key, {})
            for sub, sub_value in value.items():
                expected = before.get(sub, defaults[key][sub])
                if expected != sub_value:
                    out.append(f"{key}.{sub}: {expected!r} -> {sub_value!r}")
        elif recorded.get(key, defaults[key]) != value:
            out.append(f"{key}: {recorded.get(key, defaults[key])!r} -> {value!r}")
    unknown = set(recorded) - set(now)
    out += [f"{key}: recorded but no longer a setting" for key in sorted(unknown)]
    return out


def describe(chain: list[Stage], recorded_before: list[dict[str, Any]] | None = None) -> str:
    """The chain as text for ``train --dry-run``: one line per stage, then the last stage's settings."""
    lines = []
    for record in recorded_before or []:
        lines.append(f"   (recorded) {record['stage']} epoch {record['epoch']}")
    for i, stage in enumerate(chain, 1):
        c = stage.config
        lines.append(
            f"{i:2}. {c.name:<14} {stage.path}  init {c.init}; {c.epochs} epochs x {c.samples_per_epoch} samples, "
            f"batch {c.batch_size}, {c.image_size} px, lr {c.lr:g} (encoder {c.encoder_lr:g})"
        )
    last = chain[-1].config
    lines.append(f"\nresolved {last.name}:")
    lines += [f"  {line}" for line in _settings(last.to_dict())]
    return "\n".join(lines)


def _settings(values: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        if isinstance(value, dict) and value and key in ("data", "augment"):
            out += _settings(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}: {value}")
    return out
