"""A client connection left idle for 60 s with keepalive pings (as etcdctl sends every 10 s)
must stay up: gRPC's defaults would answer the pings with GOAWAY too_many_pings. An idle watch
stream on the same connection stays open too, and still delivers afterwards."""
import queue
import threading
import time

import grpc

from chainfire_harness import cluster as harness
from chainfire_harness.api import rpc_pb2, rpc_pb2_grpc


def test_idle_connection_with_keepalive_pings_stays_open():
    with harness.Cluster(1) as c:
        channel = grpc.insecure_channel(c.members[0].endpoint, options=[
            ("grpc.keepalive_time_ms", 10000),
            # Generous: on a loaded machine a late ping ack must not look like a dropped
            # connection; what is tested is that the server never sends GOAWAY.
            ("grpc.keepalive_timeout_ms", 30000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ])
        states, lock = [], threading.Lock()

        def record(state):
            with lock:
                states.append(state)

        channel.subscribe(record, try_to_connect=True)
        requests = queue.Queue()
        watch = None
        try:
            kv = rpc_pb2_grpc.KVStub(channel)
            kv.Put(rpc_pb2.PutRequest(key=b"idle", value=b"1"), timeout=10)
            # An idle watch stream on the same channel.
            requests.put(rpc_pb2.WatchRequest(
                create_request=rpc_pb2.WatchCreateRequest(key=b"idle-watch")))
            watch = rpc_pb2_grpc.WatchStub(channel).Watch(iter(requests.get, None))
            assert next_within(watch, 10).created
            with lock:
                connected_at = len(states)
            time.sleep(62)
            with lock:
                after = states[connected_at:]
            assert all(s == grpc.ChannelConnectivity.READY for s in after), (
                "the idle connection was dropped: %s" % after)
            r = kv.Range(rpc_pb2.RangeRequest(key=b"idle"), timeout=10)
            assert r.kvs[0].value == b"1"
            kv.Put(rpc_pb2.PutRequest(key=b"idle-watch", value=b"after"), timeout=10)
            event = next_within(watch, 10)
            assert event.events[0].kv.value == b"after", "the idle watch still delivers"
        finally:
            requests.put(None)
            if watch is not None:
                watch.cancel()
            channel.unsubscribe(record)
            channel.close()


def next_within(stream, seconds):
    """The stream's next message, or an assertion error after `seconds` (bounded wait)."""
    holder = []
    t = threading.Thread(target=lambda: holder.append(next(stream)), daemon=True)
    t.start()
    t.join(seconds)
    if not holder:
        stream.cancel()
        raise AssertionError("no message within %ss" % seconds)
    return holder[0]
