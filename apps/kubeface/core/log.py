"""One logging set-up for every service: one line per event on stderr.

``LOG_FORMAT=text`` (the default) is for people: ``time level logger: message``.
``LOG_FORMAT=json`` is for log pipelines: one JSON object per line with ``time`` (UTC, ISO 8601),
``level``, ``service``, ``logger``, ``message``, ``image_id`` while one is in play (see
:func:`image_context`, or ``extra={"image_id": ...}``) and ``exception`` when there is one.

Both formats pass the finished line through the same redaction: the secrets handed to
:func:`setup` (the database password) and the password of any ``scheme://user:password@`` URL
are replaced by ``***``, tracebacks included.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TextIO

FORMATS = ("text", "json")
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@")
_MASK = "***"

_image_id: ContextVar[int | None] = ContextVar("kubeface_image_id", default=None)


@contextmanager
def image_context(image_id: int) -> Iterator[None]:
    """Every record logged inside the block (on this thread or task) carries ``image_id``."""
    token = _image_id.set(image_id)
    try:
        yield
    finally:
        _image_id.reset(token)


class _Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, line: str) -> str:
        line = _URL_PASSWORD.sub(rf"\1{_MASK}@", line)
        for secret in self.secrets:
            line = line.replace(secret, _MASK)
        return line


class TextFormatter(logging.Formatter):
    def __init__(self, redact: _Redactor) -> None:
        super().__init__(_TEXT)
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, redact: _Redactor) -> None:
        super().__init__()
        self.service, self.redact = service, redact

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        event: dict[str, object] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        image_id = getattr(record, "image_id", None)
        if image_id is None:
            image_id = _image_id.get()
        if image_id is not None:
            event["image_id"] = image_id
        if record.exc_info:
            event["exception"] = self.redact(self.formatException(record.exc_info))
        elif record.exc_text:
            event["exception"] = self.redact(record.exc_text)
        # ensure_ascii: a stray control character or surrogate never breaks the line.
        return json.dumps(event, ensure_ascii=True, default=str)


def setup(level: str = "INFO", fmt: str = "text", service: str = "kubeface",
          secrets: Iterable[str] = (), stream: TextIO | None = None) -> None:
    """Configure the root logger: the kube-face handler is installed once and replaced by a
    later call (a new format, service or secret list)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_kubeface", False)]:
        root.removeHandler(old)
    redact = _Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service, redact))
    else:
        handler.setFormatter(TextFormatter(redact))
    handler._kubeface = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that log every connection at INFO drown the service's own lines.
    for noisy in ("nsq", "tornado.access", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
