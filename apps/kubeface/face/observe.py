"""The face service's metrics and health port (``FACE_METRICS_PORT``).

``/readyz`` answers 200 once the known faces are loaded (the gRPC health service says SERVING
from the same moment); ``/healthz`` while the server process runs. The scrape adds up the
server's and every recognition worker's values (``prometheus-client``'s multiprocess mode, set
up by :func:`kubeface.core.metrics.use_multiprocess` before the workers start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubeface.core import metrics, metrics_server
from kubeface.core.config import Settings

if TYPE_CHECKING:
    from kubeface.face.server import Recogniser


def start(settings: Settings, recogniser: Recogniser) -> metrics_server.MetricsServer:
    observed = metrics.face()
    recogniser.on_loaded.append(observed.known_loaded)

    def ready() -> tuple[bool, str]:
        known = recogniser.known
        if known is None:
            return False, "known faces not loaded yet"
        return True, f"{known.faces} known face(s) of {known.people} people"

    return metrics_server.start(settings.bind_address, settings.face_metrics_port,
                                "face service", readyz=ready)
