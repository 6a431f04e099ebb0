"""The NSQ message contract between the receiver, the retry job and the image processor.

Topic ``images``, channel ``ch`` (the article's). A message body is the image id as a signed
64-bit little-endian integer: 8 bytes, the article's Go receiver's format (not
``binary.PutVarint``), so a producer and a consumer of either kind agree.
"""

import struct

TOPIC = "images"
CHANNEL = "ch"

_FORMAT = "<q"
BODY_SIZE = struct.calcsize(_FORMAT)


class MalformedMessage(ValueError):
    """A message body that is not an 8-byte image id; it can never succeed, so it is dropped."""


def encode_image_id(image_id: int) -> bytes:
    """The body that asks for image ``image_id`` to be processed."""
    if image_id <= 0:
        raise ValueError(f"image ids are positive, got {image_id}")
    return struct.pack(_FORMAT, image_id)


def decode_image_id(body: bytes) -> int:
    """The image id in a message body; :class:`MalformedMessage` when it is not one."""
    if len(body) != BODY_SIZE:
        raise MalformedMessage(f"expected {BODY_SIZE} bytes (int64 little-endian), got {len(body)}")
    (image_id,) = struct.unpack(_FORMAT, body)
    if image_id <= 0:
        raise MalformedMessage(f"image ids are positive, got {image_id}")
    return image_id
