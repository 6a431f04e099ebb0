"""Exit 0 when the gRPC server at ADDRESS answers the standard health check SERVING."""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

with grpc.insecure_channel(sys.argv[1]) as channel:
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    except grpc.RpcError as exc:
        sys.exit(f"not serving: {exc.code().name}")
status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
print(status)
sys.exit(0 if status == "SERVING" else 1)
