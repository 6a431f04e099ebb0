"""Publishing image ids to NSQ, for the receiver and the retry job.

Publishing goes to nsqd's HTTP API (``/pub``, and ``/mpub`` for many ids in one request) over a
pooled keep-alive connection: the receiver is a threaded WSGI app, and pynsq's ``Writer`` would
need a tornado IOLoop in every process. Consuming (the processor) uses pynsq.

With ``NSQ_TLS_*`` set, every connection to nsqd is TLS and shows the services' client
certificate: nsqd then refuses plain TCP commands and answers its plain HTTP port with 403
``TLS_REQUIRED`` (that port stays open for nsqlookupd's registration only).
"""

from __future__ import annotations

import functools
import json
import ssl
import struct
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import urllib3

from kubeface.core.config import Settings
from kubeface.core.messages import TOPIC, encode_image_id


@functools.cache
def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The client context for nsqd (its CA only, the services' certificate); None: plain.
    One per configuration: a context is thread-safe, and loading the files costs."""
    files = settings.nsq_tls_files
    if files is None:
        return None
    ca, cert, key = files
    context = ssl.create_default_context(cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


def tls_options(settings: Settings) -> dict[str, object] | None:
    """The same as :func:`tls_context`, in the form pynsq's Reader takes (``tls_options``,
    given to tornado): hostname checked, TLS 1.2 or later."""
    files = settings.nsq_tls_files
    if files is None:
        return None
    ca, cert, key = files
    return {"ssl_version": ssl.PROTOCOL_TLS_CLIENT, "cert_reqs": ssl.CERT_REQUIRED,
            "ca_certs": str(ca), "certfile": str(cert), "keyfile": str(key)}


def nsqd_url(address: str, path: str, tls: ssl.SSLContext | None) -> str:
    return f"{'https' if tls else 'http'}://{address}{path}"


def get_json(url: str, timeout: float, tls: ssl.SSLContext | None = None) -> Any:
    """GET ``url`` (nsqd or nsqlookupd's HTTP API) and parse the JSON answer. An nsqd that
    requires TLS answers its plain port with 403 and its HTTPS port: with ``tls`` that
    answer is followed (nsqlookupd knows only the plain port)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=tls) as reply:  # noqa: S310
            return json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        if tls is None or exc.code != 403 or not url.startswith("http://"):
            raise
        refusal = json.loads(exc.read() or b"{}")
        if refusal.get("message") != "TLS_REQUIRED" or not refusal.get("https_port"):
            raise
    parts = urllib.parse.urlsplit(url)
    https = parts._replace(scheme="https", netloc=f"{parts.hostname}:{refusal['https_port']}")
    return get_json(https.geturl(), timeout, tls)


class PublishError(RuntimeError):
    """nsqd did not take the message(s); the images stay pending for the retry job."""


class Publisher:
    """Publishes image ids to one nsqd over HTTP; thread-safe (urllib3's pool)."""

    def __init__(self, nsqd_http_address: str, topic: str = TOPIC, timeout: float = 5.0,
                 threads: int = 8, tls: ssl.SSLContext | None = None) -> None:
        """``threads``: how many threads may publish at once; each keeps its connection (a
        pool smaller than that opens and drops one per publish). ``tls``: HTTPS to
        ``nsqd_http_address`` (nsqd's HTTPS port) with :func:`tls_context`."""
        self.address = nsqd_http_address
        self.topic = topic
        self.tls = tls
        self._http = urllib3.PoolManager(
            maxsize=threads, timeout=urllib3.Timeout(total=timeout), retries=False,
            ssl_context=tls,
        )

    @classmethod
    def for_settings(cls, settings: Settings, threads: int = 8) -> Publisher:
        """To the configured nsqd, over TLS when ``NSQ_TLS_*`` say so."""
        return cls(settings.nsqd_http_address, threads=threads, tls=tls_context(settings))

    def _post(self, endpoint: str, body: bytes, **params: str) -> None:
        query = urlencode({"topic": self.topic, **params})
        url = nsqd_url(self.address, f"/{endpoint}?{query}", self.tls)
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
            response = self._http.request("GET", nsqd_url(self.address, "/ping", self.tls))
        except urllib3.exceptions.HTTPError as exc:
            raise PublishError(f"nsqd at {self.address} unreachable: {exc}") from exc
        if response.status != 200:
            raise PublishError(f"nsqd at {self.address} is unhealthy ({response.status})")
