"""The ONNX Runtime path the CPU server uses must give the eager model's masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from shoeseg.model import build_model
from shoeseg.model.runtime import ONNX_FILE, OnnxPredictor, TorchPredictor, export_onnx
from shoeseg.model.sessions import archive_predictor
from tests.serving_helpers import TINY


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    for p in model.parameters():  # make the random model's output depend on its input
        p.data.add_(torch.randn_like(p) * 0.05)
    folder = tmp_path_factory.mktemp("graph")
    return model, export_onnx(model, folder / ONNX_FILE, TINY.input_size)


@pytest.mark.slow  # the exported fixture exports the shipped graph (~65 s once)
def test_onnx_runtime_matches_eager_probabilities_and_masks(exported: tuple[torch.nn.Module, Path]) -> None:
    model, graph = exported
    batch = torch.randn(3, 3, TINY.input_size, TINY.input_size, generator=torch.Generator().manual_seed(1))
    eager = TorchPredictor(model)(batch)
    fast = OnnxPredictor(graph, threads=1)(batch.numpy())
    assert fast.shape == eager.shape == (3, TINY.input_size, TINY.input_size)
    assert eager.std() > 1e-3  # a constant output would match trivially
    assert np.abs(fast - eager).max() < 1e-4
    decided = np.abs(eager - 0.5) > 1e-3
    assert np.array_equal((fast > 0.5)[decided], (eager > 0.5)[decided])
    single = OnnxPredictor(graph, threads=1)(batch[:1].numpy())  # dynamic batch axis
    assert np.abs(single - fast[:1]).max() < 1e-4
    lean = archive_predictor(model, graph.parent, "onnx", memory_arena=False)
    assert not lean.session.get_session_options().enable_cpu_mem_arena
    assert np.abs(lean(batch.numpy()) - fast).max() < 1e-6  # the arena changes memory, not results


@pytest.mark.slow  # the exported fixture
def test_onnx_runs_in_chunks_give_the_whole_batch_in_order(exported: tuple[torch.nn.Module, Path]) -> None:
    model, graph = exported
    batch = torch.randn(5, 3, TINY.input_size, TINY.input_size, generator=torch.Generator().manual_seed(3))
    whole = OnnxPredictor(graph, threads=1)(batch.numpy())
    flags = [True, False, False, True, False]
    for chunk in (1, 2, 5, 8):
        chunked = OnnxPredictor(graph, threads=1, chunk=chunk)
        assert chunked(batch.numpy()).shape == whole.shape
        assert np.abs(chunked(batch.numpy()) - whole).max() < 1e-5, chunk
        assert (
            np.abs(chunked(batch.numpy(), flags) - OnnxPredictor(graph, threads=1)(batch.numpy(), flags)).max() < 1e-5
        )
    assert archive_predictor(model, graph.parent, "onnx").chunk == 1  # the server's default on CPU


@pytest.mark.slow  # the exported fixture
def test_choose_predictor_prefers_the_packed_graph_on_cpu(exported: tuple[torch.nn.Module, Path]) -> None:
    model, graph = exported
    assert isinstance(archive_predictor(model, graph.parent, "auto"), OnnxPredictor)
    assert isinstance(archive_predictor(model, graph.parent, "torch"), TorchPredictor)
    empty = graph.parent / "empty"
    empty.mkdir(exist_ok=True)
    assert isinstance(archive_predictor(model, empty, "auto"), TorchPredictor)
    with pytest.raises(FileNotFoundError, match="needs resunet.onnx"):
        archive_predictor(model, empty, "onnx")
    with pytest.raises(ValueError, match="use one of auto, torch, onnx, onnx-int8"):
        archive_predictor(model, graph.parent, "tensorrt")


@pytest.mark.slow  # the exported fixture
def test_tta_is_the_same_on_both_runtimes(exported: tuple[torch.nn.Module, Path]) -> None:
    """tta=true per image in a batch: ONNX (mirror_average) and eager (foreground_probability) agree."""
    model, graph = exported
    batch = torch.randn(3, 3, TINY.input_size, TINY.input_size, generator=torch.Generator().manual_seed(2))
    flags = [True, False, True]
    eager = TorchPredictor(model)(batch, flags)
    fast = OnnxPredictor(graph, threads=1)(batch.numpy(), flags)
    assert np.abs(fast - eager).max() < 1e-4
    plain = TorchPredictor(model)(batch)
    assert np.abs(eager[1] - plain[1]).max() < 1e-6  # no tta on that row
    assert np.abs(eager[0] - plain[0]).max() > 1e-3  # the random model is not mirror-symmetric
    mirrored = TorchPredictor(model)(batch.flip(-1))[:, :, ::-1]
    assert np.abs(eager[2] - (plain[2] + mirrored[2]) / 2).max() < 1e-5
