"""The image lifecycle: one definition, used by every service and checked against the schema."""

from enum import StrEnum


class Status(StrEnum):
    """Where an image is in its lifecycle (stored as-is in ``images.status``)."""

    PENDING = "pending"
    PROCESSING = "processing"
    PROCESSED = "processed"
    UNKNOWN = "unknown"
    NO_FACE = "no_face"
    FAILED = "failed"

    @property
    def words(self) -> str:
        """How the frontend says it to a person."""
        return _WORDS[self]

    @property
    def terminal(self) -> bool:
        """True when nothing more will happen to the image unless someone retries it."""
        return self in TERMINAL


_WORDS = {
    Status.PENDING: "Pending",
    Status.PROCESSING: "Processing",
    Status.PROCESSED: "Processed: person recognised",
    Status.UNKNOWN: "Unknown person",
    Status.NO_FACE: "No face found",
    Status.FAILED: "Failed",
}

TERMINAL = frozenset({Status.PROCESSED, Status.UNKNOWN, Status.NO_FACE, Status.FAILED})
