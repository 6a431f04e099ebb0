"""Publishing image ids to NSQ, for the receiver and the retry job.

Publishing goes to nsqd's HTTP API (``/pub``, and ``/mpub`` for many ids in one request) over a
pooled keep-alive connection: the receiver is a threaded WSGI app, and pynsq's ``Writer`` would
need a tornado IOLoop in every process. Consuming (the processor) uses pynsq.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from urllib.parse import urlencode

import urllib3

from kubeface.core.messages import TOPIC, encode_image_id


class PublishError(RuntimeError):
    """nsqd did not take the message(s); the images stay pending for the retry job."""


class Publisher:
    """Publishes image ids to one nsqd over HTTP; thread-safe (urllib3's pool)."""

    def __init__(self, nsqd_http_address: str, topic: str = TOPIC, timeout: float = 5.0,
                 threads: int = 8) -> None:
        """``threads``: how many threads may publish at once; each keeps its connection (a
        pool smaller than that opens and drops one per publish)."""
        self.address = nsqd_http_address
        self.topic = topic
        self._http = urllib3.PoolManager(
            maxsize=threads, timeout=urllib3.Timeout(total=timeout), retries=False
        )

    def _post(self, endpoint: str, body: bytes, **params: str) -> None:
        query = urlencode({"topic": self.topic, **params})
        url = f"http://{self.address}/{endpoint}?{query}"
        try:
            response = self._http.request("POST", url, body=body)
        except urllib3.exceptions.HTTPError as exc:
            raise PublishError(f"nsqd at {self.address} unreachable: {exc}") from exc
        if response.status != 200:
            raise PublishError(
                f"nsqd at {self.address} answered {response.status}: {response.data[:200]!r}"
            )

    def publish(self, image_id: int) -> None:
        self._post("pub", encode_image_id(image_id))

    def publish_many(self, image_ids: Sequence[int]) -> None:
        """All ids in one request (nsqd's binary ``/mpub``: count, then size-prefixed bodies)."""
        if not image_ids:
            return
        bodies = [encode_image_id(i) for i in image_ids]
        payload = struct.pack(">I", len(bodies)) + b"".join(
            struct.pack(">I", len(b)) + b for b in bodies
        )
        self._post("mpub", payload, binary="true")

    def ping(self) -> None:
        """Raise :class:`PublishError` unless nsqd answers its health check."""
        try:
            response = self._http.request("GET", f"http://{self.address}/ping")
        except urllib3.exceptions.HTTPError as exc:
            raise PublishError(f"nsqd at {self.address} unreachable: {exc}") from exc
        if response.status != 200:
            raise PublishError(f"nsqd at {self.address} is unhealthy ({response.status})")
