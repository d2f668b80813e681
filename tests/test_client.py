"""shoeseg.client without a server: how answers are classified and how the command line reads options."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from shoeseg.client import ImageRejectedError, ServiceError
from shoeseg.client.__main__ import main
from shoeseg.client.client import _result


def encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (4, 3), (1, 2, 3, 4)).save(buf, fmt)
    return buf.getvalue()


def test_images_pass_json_errors_are_rejections_the_rest_fails() -> None:
    for fmt in ("PNG", "WEBP"):
        assert _result(encoded(fmt), "here") == encoded(fmt)
    error = json.dumps({"code": 400, "type": "InvalidOption", "option": "output", "message": "bad value"})
    with pytest.raises(ImageRejectedError) as info:
        _result(error.encode(), "here")
    assert (info.value.status, info.value.kind) == (400, "InvalidOption")
    with pytest.raises(ServiceError, match="expected a PNG or WebP"):
        _result(b"GIF89a...", "here")


def test_cli_refuses_an_option_without_a_value(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photo = tmp_path / "shoe.png"
    photo.write_bytes(encoded("PNG"))
    with pytest.raises(SystemExit) as info:
        main([str(photo), "--option", "output"])
    assert info.value.code == 2 and "KEY=VALUE" in capsys.readouterr().err


def test_cli_reports_an_unreachable_server(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photo = tmp_path / "shoe.png"
    photo.write_bytes(encoded("PNG"))
    code = main([str(photo), "-O", "format=webp", "--url", "http://127.0.0.1:9", "--retries", "0", "--timeout", "5"])
    assert code == 1 and "cannot reach http://127.0.0.1:9/resunet/predict?format=webp" in capsys.readouterr().err
    assert not (tmp_path / "shoe_cutout.webp").exists()
