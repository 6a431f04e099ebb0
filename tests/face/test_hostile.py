"""The face service against hostile paths and files: refusals stay small and say what applies."""

from __future__ import annotations

import grpc

from tests.support.face import png_claiming, refusal

EMOJI_PATH = "\N{GRINNING FACE}" * 1024  # as long as the receiver accepts


def test_a_long_non_ascii_path_gets_a_small_refusal_not_resource_exhausted(
        shared_service, shared_folders):
    _, unknown, _ = shared_folders
    named = "\N{LATIN SMALL LETTER E WITH ACUTE}" * 120 + ".jpg"  # 245 bytes: a valid name
    (unknown / named).write_text("not a picture")
    cases = {
        EMOJI_PATH: grpc.StatusCode.INVALID_ARGUMENT,  # a name longer than the system allows
        "sub/" + EMOJI_PATH[:60] + "/x.jpg": grpc.StatusCode.NOT_FOUND,
        "../" + EMOJI_PATH[:1000]: grpc.StatusCode.INVALID_ARGUMENT,
        named: grpc.StatusCode.INVALID_ARGUMENT,
    }
    for path, code in cases.items():
        got, details = refusal(shared_service, path)
        assert got == code, (path[:20], got, details)
        assert len(details.encode()) < 1024, details
    assert shared_service.health("facerecog.Identity") == "SERVING"


def test_the_pixel_limit_message_cites_face_max_pixels(shared_service, shared_folders):
    _, unknown, _ = shared_folders
    # Past Pillow's own bomb limit (twice FACE_MAX_PIXELS), and past ours only.
    (unknown / "bomb.png").write_bytes(png_claiming(50_000, 50_000))
    (unknown / "big.png").write_bytes(png_claiming(8_000, 6_000))
    for name in ("bomb.png", "big.png"):
        code, details = refusal(shared_service, name)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "40000000" in details and "FACE_MAX_PIXELS" in details, details
        assert "80000000" not in details and "DOS attack" not in details, details
