"""The processor's face client and worker against the real face service: a refusal too large
to pass is the image's fault, and such an image ends ``failed`` at once, never retried."""

from __future__ import annotations

import pytest

from kubeface.processor import face_client
from tests.support.processor import add_images, wait_final

EMOJI_PATH = "\N{GRINNING FACE}" * 1024  # the longest path the receiver accepts


def test_an_answer_too_large_to_pass_is_the_image_s_fault(face_service):
    # A refusal larger than the client takes gives RESOURCE_EXHAUSTED on the client's side;
    # the limit is lowered here because the service now keeps its messages small.
    client = face_client.FaceClient(face_service.address, 30, channel_options=[
        ("grpc.max_metadata_size", 256), ("grpc.absolute_max_metadata_size", 256)])
    try:
        with pytest.raises(face_client.ImageError) as caught:
            client.identify("missing/" + "x" * 300 + ".jpg")
        assert "RESOURCE_EXHAUSTED" in str(caught.value)
        assert len(str(caught.value)) <= face_client.REASON_LENGTH
        client.check_health()  # the service itself is fine
    finally:
        client.close()


def test_a_long_non_ascii_path_ends_failed_with_its_reason_at_once(processor, db, publisher):
    ids = add_images(db, [EMOJI_PATH, "missing.jpg"])
    publisher.publish_many(ids)
    assert wait_final(db, ids, timeout=60) == {i: "failed" for i in ids}
    rows = {int(r.id): r for r in db.query(
        "SELECT id, attempts, retryable, last_error FROM images")}
    for i in ids:
        assert rows[i].attempts == 1 and rows[i].retryable == 0, rows[i]
        assert len(rows[i].last_error) < 300, rows[i].last_error
    assert "File name too long" in rows[ids[0]].last_error
    assert "does not exist" in rows[ids[1]].last_error
