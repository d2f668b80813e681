"""predict.py: the seed's command line, folders (recursive, resumable, failures summarised) and every option."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import predict
from shoeseg.pipeline.compose import render
from shoeseg.pipeline.image_io import decode_image
from shoeseg.pipeline.options import Options, parse_options
from shoeseg.pipeline.remover import Remover
from tests.serving_helpers import REPO, image_bytes, tiny_checkpoint


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("cli") / "tiny.pth")


@pytest.mark.slow  # predict.py on the shipped weights (~90 s)
def test_seed_command_line(weights: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jpg"
    source.write_bytes(image_bytes(70, 50, "JPEG"))
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    cmd = [sys.executable, "predict.py", "--image", str(source), "--weights", str(weights), "--output"]
    subprocess.run([*cmd, str(tmp_path / "out.png")], cwd=REPO, env=env, check=True, capture_output=True)
    out = Image.open(tmp_path / "out.png")
    assert (out.format, out.mode, out.size) == ("PNG", "RGBA", (70, 50))


def make_folder(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "one.jpg").write_bytes(image_bytes(40, 30, "JPEG"))
    (root / "a" / "two.png").write_bytes(image_bytes(33, 21))
    (root / "a" / "b" / "three.webp").write_bytes(image_bytes(25, 45, "WEBP"))
    (root / "a" / "broken.jpg").write_bytes(image_bytes(40, 30, "JPEG")[:200])
    (root / "notes.txt").write_text("not a photo")


@pytest.mark.slow  # predict.py over a folder, twice (~45 s)
def test_folder_recursive_resumable_with_failure_summary(
    weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    make_folder(tmp_path / "in")
    args = ["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"), "--weights", str(weights)]
    assert predict.main(args) == 1
    err = capsys.readouterr().err
    assert "3 written, 1 failed" in err and "FAILED" in err and "broken.jpg" in err
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["a/b/three.png", "a/two.png", "one.png"]
    assert Image.open(tmp_path / "out" / "a" / "b" / "three.png").size == (25, 45)
    stamp = (tmp_path / "out" / "one.png").stat().st_mtime_ns
    (tmp_path / "in" / "a" / "broken.jpg").unlink()
    assert predict.main(args) == 0  # everything done already: nothing rewritten
    assert "0 written, 0 failed" in capsys.readouterr().err
    assert (tmp_path / "out" / "one.png").stat().st_mtime_ns == stamp


FLAG_CASES = [
    ([], Options()),
    (["--mode", "mask"], Options(output="mask")),
    (["--mode", "rgb", "--bg", "#336699"], Options(output="rgb", bg=(51, 102, 153, 255))),
    (["--bg", "#00000080"], Options(bg=(0, 0, 0, 128))),
    (["--crop", "--margin", "5%", "--matte", "soft"], Options(crop=True, margin=(5.0, True), matte="soft")),
    (["--matte", "soft"], Options(matte="soft")),
    (
        ["--preset", "transparent-square", "--matte", "soft"],
        parse_options({"preset": "transparent-square", "matte": "soft"}),
    ),
    (["--format", "webp"], Options(format="webp")),
    (["--size", "32"], Options(size=32)),
    (["--threshold", "0.45"], Options(threshold=0.45)),
    (["--refine"], Options(refine=True)),
    (["--tta"], Options(tta=True)),
]


@pytest.mark.parametrize(("flags", "options"), FLAG_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_every_option_as_a_flag(weights: Path, tmp_path: Path, flags: list[str], options: Options) -> None:
    data = image_bytes(64, 48, "JPEG")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "shoe.jpg").write_bytes(data)
    args = ["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"), "--weights", str(weights)]
    assert predict.main([*args, *flags]) == 0
    produced = (tmp_path / "out" / "shoe").with_suffix(options.suffix).read_bytes()
    remover = Remover(weights)  # the CPU server's path: the ONNX graph in onnxruntime
    image = decode_image(data)
    assert produced == render(image, remover.predict_alpha(image, options), options)  # the server's functions
    result = Image.open(io.BytesIO(produced))
    assert result.format == options.format.upper()
    assert result.mode == {"rgba": "RGBA", "mask": "L", "rgb": "RGB"}[options.output]
    if options.size:
        assert max(result.size) == options.size
    if options.threshold is not None:
        assert set(np.unique(np.asarray(result)[..., 3])) <= {0, 255}


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--mode", "jpeg"], "--mode: bad value output='jpeg'"), (["--margin", "4"], "--margin: margin applies")],
)
def test_bad_flag_values_exit_2(weights: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        predict.main(["--image", "x.jpg", "--weights", str(weights), *flags])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_gallery_renders_a_small_png(weights: Path, tmp_path: Path) -> None:
    from benchmarks.gallery import main as gallery

    (tmp_path / "photos").mkdir()
    for i in range(5):
        (tmp_path / "photos" / f"{i}.jpg").write_bytes(image_bytes(60 + i, 80, "JPEG"))
    out = tmp_path / "docs" / "gallery.png"
    gallery(["--photos", str(tmp_path / "photos"), "--weights", str(weights), "--out", str(out), "--count", "3"])
    grid = Image.open(out)
    assert grid.format == "PNG" and grid.size[1] == 2 * (160 + 12)  # 3 photos, 2 per row
    assert out.stat().st_size < 1_000_000


def test_review_writes_sheets_alphas_and_confidences(weights: Path, tmp_path: Path) -> None:
    from benchmarks.review import main as review

    (tmp_path / "photos").mkdir()
    for i in range(4):
        (tmp_path / "photos" / f"{i}.jpg").write_bytes(image_bytes(60 + i, 80, "JPEG"))
    out = tmp_path / "review"
    args = ["--photos", str(tmp_path / "photos"), "--weights", str(weights), "--out", str(out)]
    review([*args, "--peer", str(tmp_path / "none.onnx"), "--runtime", "torch", "--per-sheet", "3", "--height", "50"])
    assert sorted(p.name for p in out.glob("sheet_*.png")) == ["sheet_1.png", "sheet_2.png"]  # 3 + 1 photos
    assert Image.open(out / "sheet_1.png").size[1] == 3 * (50 + 8)  # one row of tiles (+ gaps) per photo
    scores = json.loads((out / "review.json").read_text())
    assert [s["photo"] for s in scores] == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    assert all(0.0 <= s[mode] <= 1.0 for s in scores for mode in ("default", "best"))
    alpha = Image.open(out / "alphas" / "2.default.png")
    assert alpha.mode == "L" and alpha.size == (62, 80)  # at the photo's own size
    with pytest.raises(SystemExit, match="not in"):
        review([*args, "--only", "9.jpg"])
