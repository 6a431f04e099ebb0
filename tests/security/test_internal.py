"""The internal doors of the local target: the face service's Reload answers only on its Unix
socket, which only the service's user may open; through the real face service."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import grpc
import pytest

from facerecog import face_pb2, face_pb2_grpc
from tests.support.face import FaceService, copy_samples, face_env

NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"

CONNECT_AS_NOBODY = """
import os, socket, sys
os.listdir(os.path.dirname(os.path.dirname(sys.argv[1])))  # the folder above is open to all
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    sys.exit(13)
sys.exit(0)
"""


def _reload(target: str) -> face_pb2.ReloadResponse:
    with grpc.insecure_channel(target) as channel:
        return face_pb2_grpc.IdentityStub(channel).Reload(face_pb2.ReloadRequest(), timeout=120)


def test_reload_answers_only_on_the_admin_socket(photos, tmp_path):
    known, unknown, _ = copy_samples(photos, tmp_path)
    # Above the socket's folder, everything is open to every user: only the modes the
    # service gives its folder and socket keep them out.
    base = Path(tempfile.mkdtemp(prefix="kubeface-admin-"))
    base.chmod(0o755)
    admin = base / "run" / "face-admin.sock"
    service = FaceService(tmp_path / "face", face_env(known, unknown, tmp_path / "cache",
                                                      FACE_ADMIN_SOCKET=str(admin))).start()
    try:
        with pytest.raises(grpc.RpcError) as caught:
            _reload(service.address)  # loopback TCP: any user of the machine gets here
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "FACE_ADMIN_SOCKET" in caught.value.details()
        assert service.identify("obama2.jpg").person == "Barack Obama"  # Identify stays open

        reply = _reload(f"unix:{admin}")
        assert (reply.known_images, reply.people) == (3, 3)
        assert stat.S_IMODE(admin.stat().st_mode) == 0o600
        assert stat.S_IMODE(admin.parent.stat().st_mode) == 0o700
        if os.geteuid() == 0:
            # Another user of the machine cannot even connect.
            # The system's Python: the project's may sit in a folder that user cannot enter.
            result = subprocess.run([SYSTEM_PYTHON, "-c", CONNECT_AS_NOBODY, str(admin)],
                                    user=NOBODY, group=NOBODY, extra_groups=[], cwd="/",
                                    check=False)
            assert result.returncode == 13
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(admin))  # while its own user can
        assert "Reload refused to ipv4:127.0.0.1" in service.log.read_text()
    finally:
        service.stop()
        shutil.rmtree(base)


def test_without_an_admin_socket_reload_answers_on_tcp(photos, tmp_path):
    # Kubernetes: the face service's NetworkPolicy decides who reaches the port.
    known, unknown, _ = copy_samples(photos, tmp_path)
    service = FaceService(tmp_path / "face", face_env(known, unknown,
                                                      tmp_path / "cache")).start()
    try:
        assert _reload(service.address).known_faces == 3
    finally:
        service.stop()
