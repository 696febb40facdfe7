"""gRPC clients over TLS for the TLS tests: a client of a member's client port (the etcd KV API)
or of its peer port (ChainFire's peer Probe), with a chosen trust bundle and certificate, and a
Pinger that keeps calling over one connection and records when calls stop being answered."""
import threading
import time

import grpc

from chainfire_harness.api import etcdrpc, peer_pb2, peer_pb2_grpc


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def channel(endpoint, ca, cert=None, key=None):
    """A TLS channel to `endpoint` trusting the CA file `ca`, presenting `cert`/`key` (paths)
    when given. Its own subchannel: no connection is shared with another channel."""
    creds = grpc.ssl_channel_credentials(_read(ca), _read(key) if key else None,
                                         _read(cert) if cert else None)
    return grpc.secure_channel(endpoint, creds, options=[("grpc.use_local_subchannel_pool", 1)])


def put(ch, key, value, timeout=5):
    """Puts over `ch`; returns the revision."""
    r = etcdrpc.KVStub(ch).Put(etcdrpc.PutRequest(key=key.encode(), value=value.encode()),
                               timeout=timeout)
    return r.header.revision


def get(ch, key, timeout=5):
    """The value of `key` (bytes) or None; a linearizable read."""
    r = etcdrpc.KVStub(ch).Range(etcdrpc.RangeRequest(key=key.encode()), timeout=timeout)
    return r.kvs[0].value if r.kvs else None


def probe_peer(ch, timeout=5):
    return peer_pb2_grpc.PeerStub(ch).Probe(peer_pb2.ProbeRequest(), timeout=timeout)


def answered(call, *args):
    """True when `call(*args)` returns, False when it raises a gRPC error."""
    try:
        call(*args)
        return True
    except grpc.RpcError:
        return False


def wait_until(condition, timeout, what):
    """Polls `condition()` every 0.1 s until true; returns the seconds it took, or raises."""
    start = time.time()
    while time.time() - start < timeout:
        if condition():
            return time.time() - start
        time.sleep(0.1)
    raise AssertionError("%s: not within %ss" % (what, timeout))


class Pinger:
    """Calls `call(channel)` every `interval` seconds on one channel (one connection, re-made
    by gRPC when the server closes it) from a thread, recording (time, answered)."""

    def __init__(self, ch, call, interval=0.2):
        self.ch, self.call, self.interval = ch, call, interval
        self.results = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            ok = answered(self.call, self.ch)
            self.results.append((time.time(), ok))
            self._stop.wait(self.interval)

    def last_answer_after(self, t):
        """Seconds from `t` to the last answered call after it (0 when none was answered)."""
        answers = [when - t for when, ok in self.results if when > t and ok]
        return max(answers) if answers else 0.0

    def refusals_after(self, t):
        """How many calls after `t` were not answered."""
        return sum(1 for when, ok in self.results if when > t and not ok)

    def answered_after(self, t):
        """Whether any call after `t` was answered."""
        return any(ok for when, ok in self.results if when > t)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)
        self.ch.close()
