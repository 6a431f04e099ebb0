"""Generated gRPC code for proto/facerecog/face.proto (package ``facerecog``).

The ``face_pb2*.py`` modules here are generated at install time by ``scripts/genproto.sh``
(also run by ``scripts/setup.sh`` and the image builds) and are not committed.
"""
