"""``shoeseg.remove`` answers with the server's very bytes: same pipeline, same runtime (a real TorchServe)."""

from __future__ import annotations

import pytest

from shoeseg.handler import server as ts_server
from shoeseg.pipeline import Remover
from tests.serving_helpers import image_bytes
from tests.test_options_integration import via_form, via_query

pytestmark = pytest.mark.integration

CASES = [{}, {"output": "rgb", "bg": "#336699"}, {"crop": "true", "margin": "10%", "format": "webp"}, {"tta": "true"}]


@pytest.mark.parametrize("options", CASES, ids=lambda o: "&".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_remove_is_byte_identical_to_the_server(server: ts_server.Server, options: dict[str, str]) -> None:
    remover = Remover(next(server.home.parent.glob("tiny.pth")), "cpu")  # the server's checkpoint, CPU path
    photo = image_bytes(150, 110, "JPEG")
    local = remover.remove(photo, encoded=True, **options)
    for status, _, body in (via_query(server, options, photo), via_form(server, options, photo)):
        assert status == 200, body[:300]
        assert body == local
