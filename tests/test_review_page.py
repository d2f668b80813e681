"""``shoeseg remove DIR -o OUT --report``: the review page, loaded offline in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from shoeseg.review_page import ReviewEntry, review_order
from tests.serving_helpers import image_bytes, tiny_checkpoint
from tests.test_library import run_cli

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def test_review_order_puts_the_least_confident_first_and_unknown_last() -> None:
    entries = [ReviewEntry(Path(f"{n}.jpg"), Path(f"{n}.png"), c) for n, c in (("a", 0.9), ("b", None), ("c", 0.2))]
    assert [e.source.name for e in review_order(entries)] == ["c.jpg", "a.jpg", "b.jpg"]


def dump_dom(page: Path) -> str:
    """The page's DOM after its load event, from a headless Chromium with no network."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    command += ["--proxy-server=127.0.0.1:9", "--dump-dom", page.as_uri()]  # any network fetch would fail
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.mark.slow  # the command in a subprocess and a headless Chromium (~40 s)
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_report_page_loads_offline_with_one_entry_per_image_in_confidence_order(tmp_path: Path) -> None:
    weights = tiny_checkpoint(tmp_path / "tiny.pth")
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for name, (w, h) in {"one.jpg": (60, 40), "two.png": (30, 50), "sub/three.jpg": (45, 45)}.items():
        (photos / name).write_bytes(image_bytes(w, h, "PNG" if name.endswith("png") else "JPEG"))
    out = tmp_path / "out"
    args = ("remove", str(photos), "-o", str(out), "--weights", str(weights), "--report", "--low-confidence", "1.01")
    done = run_cli(*args, "--bg", "#ff00ff")
    assert done.returncode == 0, done.stderr
    page = (out / "index.html").read_text()
    assert "http://" not in page and "https://" not in page  # self-contained
    assert "3 photos" in page and "3 to check" in page
    dom = dump_dom(out / "index.html")
    confidences = [float(c) for c in re.findall(r'data-confidence="([0-9.]+)"', dom)]
    assert len(confidences) == 3 and confidences == sorted(confidences)
    loaded, images = (int(re.search(rf'data-{k}="(\d+)"', dom).group(1)) for k in ("loaded", "images"))
    assert images == 3 * 5 and loaded == images  # photo + 2 cutout tiles + the full-size pair, each loaded
    assert dom.count('class="entry flagged"') == 3 and "rgba(255, 0, 255, 1.000)" in dom
    assert run_cli("remove", str(photos / "one.jpg"), "--report", "--weights", str(weights)).returncode == 2
