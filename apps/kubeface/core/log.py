"""One logging set-up for every service: one line per event on stderr, key=value friendly."""

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(level: str = "INFO") -> None:
    """Configure the root logger once; later calls only change the level."""
    root = logging.getLogger()
    if not any(getattr(h, "_kubeface", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._kubeface = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # Libraries that log every connection at INFO drown the service's own lines.
    for noisy in ("nsq", "tornado.access", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
