"""kube-face: distributed face recognition (receiver, processor, face service, frontend, retry)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kube-face")  # pyproject.toml's, as installed
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
