#!/usr/bin/env bash
# Generates the Python gRPC code for proto/ into apps/ (package facerecog), at install time.
# Usage: scripts/genproto.sh [PYTHON]   (a Python that has grpcio-tools; default .venv's)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${1:-$root/.venv/bin/python}
"$python" -m grpc_tools.protoc -I "$root/proto" \
  --python_out="$root/apps" --pyi_out="$root/apps" --grpc_python_out="$root/apps" \
  "$root/proto/facerecog/face.proto"
