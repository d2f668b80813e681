"""The bad-input corpus through the pure functions: request_payload -> decode_image, as the handler does."""

from __future__ import annotations

import pytest

from benchmarks.bad_inputs import corpus
from shoeseg.pipeline.image_io import DEFAULT_MAX_BYTES, InvalidImageError, decode_image, request_payload

LIMIT = 64 * 1024  # the byte limit under test: small, so the over-limit case stays small too
CASES = corpus(max_bytes=LIMIT)
HANDLED = sorted(name for name, case in CASES.items() if not case.frontend)  # the others never reach the handler


def test_corpus_covers_the_issue() -> None:
    assert len(CASES) >= 20
    assert {200, 400, 413, 415} <= {c.status for c in CASES.values()}


@pytest.mark.parametrize("name", HANDLED)
def test_case(name: str) -> None:
    case = CASES[name]
    content_type = "multipart/form-data" if case.fields is not None else case.content_type
    limit = LIMIT if name == "over-byte-limit" else DEFAULT_MAX_BYTES  # the 40 MP JPEG is 3 MB
    if case.status == 200:
        image = decode_image(request_payload(case.handler_request(), content_type, limit))
        assert image.shape == (case.size[1], case.size[0], 3) and image.dtype.name == "uint8"
        if case.colour:
            assert abs(image.reshape(-1, 3).mean(0) - case.colour).max() < 40, image.reshape(-1, 3).mean(0)
        return
    with pytest.raises(InvalidImageError) as info:
        decode_image(request_payload(case.handler_request(), content_type, limit))
    assert info.value.status == case.status, info.value.message
    assert case.words in info.value.message
    assert info.value.to_json()["code"] == case.status
