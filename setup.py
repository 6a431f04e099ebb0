"""Build hook: the gRPC code of proto/ is generated into apps/facerecog before the package is
built, so `pip install .` gives a package whose face service imports it. The metadata is all in
pyproject.toml.

grpcio-tools is a build requirement (pyproject.toml); a build without isolation (the image
builds) may lack it, and then keeps the code scripts/genproto.sh generated beforehand.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PROTO = ROOT / "proto" / "facerecog" / "face.proto"
GENERATED = ROOT / "apps" / "facerecog" / "face_pb2_grpc.py"


def generate() -> None:
    try:
        from grpc_tools import protoc
    except ImportError:
        if GENERATED.exists():
            return
        raise SystemExit("grpcio-tools is needed to generate the gRPC code from proto/") from None
    out = ROOT / "apps"
    status = protoc.main(["grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"--python_out={out}",
                          f"--pyi_out={out}", f"--grpc_python_out={out}", str(PROTO)])
    if status != 0:
        raise SystemExit(f"protoc failed on {PROTO} ({status})")


class BuildWithGrpc(build_py):
    def run(self) -> None:
        generate()
        super().run()


setup(cmdclass={"build_py": BuildWithGrpc})
