"""The etcd v3 API as Python stubs generated from this repository's proto/ (protoc and
grpc_python_plugin, at build time, into build/python; on PYTHONPATH under ctest).

    from chainfire_harness.api import rpc_pb2, rpc_pb2_grpc

The stubs live in a descriptor pool of their own. python-etcd3 registers its own, older copy of
the etcd messages (without WatchCreateRequest.fragment or WatchResponse.fragment, for example)
in protobuf's default pool, and two definitions of `etcdserverpb.*` cannot share one pool, so
the generated modules are imported while protobuf's default pool is this one.
"""
import threading
import types

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
_lock = threading.Lock()


def _import_stubs():
    default = descriptor_pool.Default
    with _lock:
        descriptor_pool.Default = lambda: POOL
        try:
            from etcd import auth_pb2, kv_pb2, rpc_pb2, rpc_pb2_grpc
            from chainfire import peer_pb2, peer_pb2_grpc
        finally:
            descriptor_pool.Default = default
    return auth_pb2, kv_pb2, rpc_pb2, rpc_pb2_grpc, peer_pb2, peer_pb2_grpc


# The etcd v3 API, and ChainFire's peer protocol (for tests that knock on a peer port).
auth_pb2, kv_pb2, rpc_pb2, rpc_pb2_grpc, peer_pb2, peer_pb2_grpc = _import_stubs()

# Messages and service stubs in one namespace, as python-etcd3's `etcd3.etcdrpc`.
etcdrpc = types.SimpleNamespace(**{k: v for m in (rpc_pb2, rpc_pb2_grpc)
                                   for k, v in vars(m).items() if not k.startswith("_")})
