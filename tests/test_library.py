"""The library and the command: ``shoeseg.remove`` / ``Remover``, ``shoeseg remove`` (file, folder, stdin),
the one ``shoeseg`` import name, and who may import whom. No server here (see test_library_integration.py)."""

from __future__ import annotations

import ast
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import shoeseg
from shoeseg import cli
from shoeseg.pipeline import InvalidImageError, OptionError, Remover, parse_options
from tests.serving_helpers import REPO, image_bytes, tiny_checkpoint


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("library") / "tiny.pth")


@pytest.fixture(scope="module")
def remover(weights: Path) -> Remover:
    return Remover(weights, "cpu")


@pytest.mark.slow  # the remover fixture exports the shipped graph (~70 s once)
def test_remove_takes_bytes_path_pil_and_numpy_alike(remover: Remover, weights: Path, tmp_path: Path) -> None:
    data = image_bytes(70, 50, "JPEG")
    (tmp_path / "shoe.jpg").write_bytes(data)
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    results = [remover.remove(x, encoded=True) for x in (data, tmp_path / "shoe.jpg", str(tmp_path / "shoe.jpg"))]
    results += [remover.remove(Image.open(io.BytesIO(data)), encoded=True), remover.remove(rgb, encoded=True)]
    assert len(set(results)) == 1
    image = shoeseg.remove(data, weights=weights, device="cpu")
    assert isinstance(image, Image.Image) and (image.mode, image.size) == ("RGBA", (70, 50))
    assert image.info["confidence"] == remover.process(data).confidence
    assert np.array_equal(np.asarray(image), np.asarray(Image.open(io.BytesIO(results[0]))))


@pytest.mark.slow  # the remover fixture
def test_remove_options_are_the_servers(remover: Remover) -> None:
    data = image_bytes(64, 48)
    got = remover.remove(data, encoded=True, output="rgb", bg="#336699", size=32, crop=False, threshold=None)
    assert got == remover.cutout(data, parse_options({"output": "rgb", "bg": "#336699", "size": "32"}))
    assert Image.open(io.BytesIO(got)).size == (32, 24) and Image.open(io.BytesIO(got)).mode == "RGB"
    assert remover.remove(data, format="webp", output="mask").format == "WEBP"
    with pytest.raises(OptionError) as err:
        remover.remove(data, output="jpeg")
    assert err.value.option == "output" and err.value.to_json()["allowed"] == "rgba|mask|rgb"
    with pytest.raises(OptionError, match="unknown option 'colour'"):
        remover.remove(data, colour="red")


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (b"not an image at all", "not a recognised image"),
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (12, "cannot read an image from a int"),
        ("/no/such/file.jpg", "no such image file"),
    ],
)
@pytest.mark.slow  # the remover fixture
def test_bad_input_says_what_to_pass(remover: Remover, image: object, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message):
        remover.remove(image)


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "shoeseg.cli", *args], input=stdin, capture_output=True, env=env, check=False
    )


@pytest.mark.slow  # the shoeseg command in subprocesses (~60 s)
def test_command_on_a_file_and_stdin(weights: Path, remover: Remover, tmp_path: Path) -> None:
    data = image_bytes(40, 30, "JPEG")
    (tmp_path / "shoe.jpg").write_bytes(data)
    done = run_cli("remove", str(tmp_path / "shoe.jpg"), "--weights", str(weights), "--size", "20")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "shoe_cutout.png").read_bytes() == remover.cutout(data, parse_options({"size": "20"}))
    confidence = remover.process(data, parse_options({"size": "20"})).confidence
    assert f"shoe_cutout.png (confidence {confidence:.3f})".encode() in done.stderr
    piped = run_cli("remove", "-", "--weights", str(weights), stdin=data)
    assert piped.returncode == 0 and piped.stdout == remover.cutout(data), piped.stderr
    bad = run_cli("remove", "-", "--weights", str(weights), stdin=b"junk")
    assert bad.returncode == 1 and b"error:" in bad.stderr and not bad.stdout
    flag = run_cli("remove", "-", "--weights", str(weights), "--quality", "better", stdin=data)
    assert flag.returncode == 2 and b"--quality: bad value quality='better'" in flag.stderr


@pytest.mark.slow  # the shoeseg command in subprocesses (~60 s)
def test_command_on_a_folder_is_recursive_and_resumable(weights: Path, tmp_path: Path) -> None:
    (tmp_path / "in" / "a").mkdir(parents=True)
    (tmp_path / "in" / "one.jpg").write_bytes(image_bytes(40, 30, "JPEG"))
    (tmp_path / "in" / "a" / "two.webp").write_bytes(image_bytes(25, 45, "WEBP"))
    (tmp_path / "in" / "a" / "broken.png").write_bytes(image_bytes(20, 20)[:50])
    args = ("remove", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights", str(weights))
    first = run_cli(*args)
    assert first.returncode == 1 and b"2 written, 1 failed" in first.stderr and b"broken.png" in first.stderr
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")) == [
        "a",
        "a/two.png",
        "one.png",
    ]
    (tmp_path / "in" / "a" / "broken.png").unlink()
    again = run_cli(*args)
    assert again.returncode == 0 and b"0 written, 0 failed, 2 skipped" in again.stderr
    unsure = run_cli(*args, "--overwrite", "--low-confidence", "1.01")  # every cutout below it: listed to check
    assert unsure.returncode == 0 and unsure.stderr.count(b"CHECK ") == 2 and b"2 to check" in unsure.stderr


def test_every_option_is_a_flag() -> None:
    from shoeseg.pipeline.options import ALLOWED

    help_text = cli.build_parser()._subparsers._group_actions[0].choices["remove"].format_help()
    assert all(f"--{key.replace('_', '-')}" in help_text for key in ALLOWED)


@pytest.mark.slow  # builds a wheel (~15 s)
def test_one_import_name(tmp_path: Path) -> None:
    """The wheel holds the `shoeseg` package and nothing else at the top; outside the checkout `model`,
    `handler` and `training` are not importable while `shoeseg.model` is."""
    source = tmp_path / "source"  # a copy: an in-tree build would leave build/ in the checkout
    shutil.copytree(REPO / "shoeseg", source / "shoeseg", ignore=shutil.ignore_patterns("__pycache__", "proto_gen"))
    shutil.copy2(REPO / "pyproject.toml", source / "pyproject.toml")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*pip, str(source)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("shoeseg-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"shoeseg", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "shoeseg/weights/resunet.pth" in names and "shoeseg/training/configs/stage1.yaml" in names
    assert "shoeseg/weights/resunet.int8.json" in names  # the int8 ranges: without them runtime=auto runs fp32
    probe = (
        "import importlib.util as u, shoeseg.model, shoeseg.pipeline; "
        "print([n for n in ('model', 'handler', 'training', 'shoeseg_client') if u.find_spec(n)])"
    )
    found = subprocess.run([sys.executable, "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert found.returncode == 0 and found.stdout.strip() == "[]", found.stderr


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_who_imports_whom() -> None:
    """The pipeline and the model never import TorchServe; training never imports the handler; nothing
    outside tests/ imports tests."""
    package = REPO / "shoeseg"
    for part, banned in (("pipeline", ("ts", "shoeseg.handler")), ("model", ("ts", "shoeseg.handler")),
                         ("training", ("ts", "shoeseg.handler"))):  # fmt: skip
        for path in (package / part).rglob("*.py"):
            bad = {n for n in imports_of(path) if n.split(".")[0] == banned[0] or n.startswith(banned[1])}
            assert not bad, f"{path.relative_to(REPO)} imports {bad}"
    for path in [*package.rglob("*.py"), *(REPO / "benchmarks").rglob("*.py"), REPO / "predict.py"]:
        assert not {n for n in imports_of(path) if n.split(".")[0] == "tests"}, path
