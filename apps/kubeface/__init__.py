"""kube-face: distributed face recognition (receiver, processor, face service, frontend, retry)."""

__version__ = "1.1.0"
