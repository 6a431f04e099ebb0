"""The processor's side of the face-recognition contract (``proto/facerecog/face.proto``).

One gRPC channel per process, reused by every call. Errors are sorted here, once:

* :class:`ImageError` -- NOT_FOUND / INVALID_ARGUMENT: the image's own fault (missing file, not
  an image, outside the root). Permanent: the image is failed with the reason; the service
  answered, so the breaker does not count it. RESOURCE_EXHAUSTED too: the service sets no
  limit on calls, so it means that this image's answer was too large to pass (a later try would
  be no smaller), not that the service is in trouble.
* :class:`ServiceTrouble` -- any other answer that is not a result (INTERNAL, an outcome this
  version does not know, ...): transient for the image, not counted by the breaker either.
* everything else (transport errors, UNAVAILABLE, DEADLINE_EXCEEDED) is the service being away:
  transient, and counted by the breaker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facerecog import SERVICE_NAME, face_pb2, face_pb2_grpc
from kubeface.core.people import Box
from kubeface.core.statuses import Status

# A restarted face service must be found again within seconds; gRPC's default reconnect
# backoff grows to two minutes.
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.enable_retries", 0),
]

_PERMANENT = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
              grpc.StatusCode.RESOURCE_EXHAUSTED}
REASON_LENGTH = 500
_SERVICE_DOWN = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


# The service's outcome as the image's status: protobuf types go no further than this module.
_OUTCOME_STATUS = {
    face_pb2.OUTCOME_MATCH: Status.PROCESSED,
    face_pb2.OUTCOME_UNKNOWN: Status.UNKNOWN,
    face_pb2.OUTCOME_NO_FACE: Status.NO_FACE,
}


@dataclass(frozen=True)
class FoundFace:
    """One face the service found, and the known face closest to it."""

    box: Box  # in the upright picture's pixels
    matched: bool
    known_image: str | None  # the closest known picture (None when no one is known)
    person_id: int | None  # when matched: the person and photo in the database
    photo_id: int | None
    distance: float | None  # None when there is no one to compare with
    encoding: tuple[float, ...]


@dataclass(frozen=True)
class Recognition:
    """What the service made of an image: its status, the best match and every face."""

    status: Status  # processed, unknown or no_face
    known_image: str | None  # the best match's known picture (processed only)
    person: str | None  # the best match's person, by the service's name for them
    faces: tuple[FoundFace, ...]
    # The people version the faces were matched against; None when the service reads a folder.
    people_version: int | None = None


def _recognition(response: face_pb2.IdentifyResponse) -> Recognition:
    return Recognition(
        status=_OUTCOME_STATUS[response.outcome],
        known_image=response.image_name or None, person=response.person or None,
        faces=tuple(FoundFace(
            box=Box(f.box.top, f.box.right, f.box.bottom, f.box.left), matched=f.matched,
            known_image=f.image_name or None, person_id=f.person_id or None,
            photo_id=f.photo_id or None,
            distance=f.distance if math.isfinite(f.distance) else None,
            encoding=tuple(f.encoding),
        ) for f in response.faces),
        people_version=response.people_version or None,
    )


class ImageError(Exception):
    """The face service refused the image for good; the message is the stored reason."""


class ServiceTrouble(Exception):
    """The face service answered, but not with a result: try again later."""


class NotServing(Exception):
    """The health service answered something other than SERVING."""


def describe(exc: BaseException) -> str:
    """A short, single-line reason for ``images.last_error``."""
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        details = (exc.details() or "").splitlines()[0:1]
        reason = f"face service {exc.code().name}: {details[0] if details else ''}".strip(": ")
        return reason[:REASON_LENGTH]
    return f"{type(exc).__name__}: {exc}"[:REASON_LENGTH]


class FaceClient:
    """Identify and health check over one channel."""

    def __init__(self, address: str, timeout: float, health_timeout: float = 2.0,
                 channel_options: list[tuple[str, Any]] | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self.health_timeout = min(health_timeout, timeout)
        self._channel = grpc.insecure_channel(
            address, options=[*_CHANNEL_OPTIONS, *(channel_options or [])])
        self._identity = face_pb2_grpc.IdentityStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def identify(self, image_path: str) -> Recognition:
        """The service's answer, or :class:`ImageError` / :class:`ServiceTrouble` /
        a ``grpc.RpcError`` that means the service is away."""
        try:
            response = self._identity.Identify(
                face_pb2.IdentifyRequest(image_path=image_path), timeout=self.timeout
            )
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise ImageError(describe(exc)) from None
            if code in _PERMANENT:
                raise ImageError((exc.details() or code.name)[:REASON_LENGTH]) from None
            if code in _SERVICE_DOWN or code is None:
                raise
            raise ServiceTrouble(describe(exc)) from None
        if response.outcome not in _OUTCOME_STATUS:
            raise ServiceTrouble(f"face service gave no outcome ({response.outcome})")
        return _recognition(response)

    def check_health(self) -> None:
        """Return when the face service says SERVING; raise otherwise (the breaker's probe)."""
        try:
            response = self._health.Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=self.health_timeout
            )
        except grpc.RpcError as exc:
            raise NotServing(describe(exc)) from None
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            raise NotServing(f"face service health is {name}")

    def close(self) -> None:
        self._channel.close()
