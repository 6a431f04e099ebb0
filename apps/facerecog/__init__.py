"""Generated gRPC code for proto/facerecog/face.proto (package ``facerecog``).

The ``face_pb2*.py`` modules here are generated at install time by ``scripts/genproto.sh``
(also run by ``scripts/setup.sh`` and the image builds) and are not committed.
"""

from facerecog import face_pb2 as _face_pb2

SERVICE_NAME: str = _face_pb2.DESCRIPTOR.services_by_name["Identity"].full_name
"""The service's full name, "facerecog.Identity" (health checks ask for it by name)."""
