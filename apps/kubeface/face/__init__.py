"""The face-recognition gRPC service (package ``facerecog`` on the wire).

``images`` opens an image safely, ``engine`` finds and encodes faces (one dlib model set per
worker process), ``known`` holds the known faces and matches against them, ``server`` serves it.
"""
