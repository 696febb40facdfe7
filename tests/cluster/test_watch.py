"""Watch through real clients: etcdctl watch (prefix, --rev, --prev-kv), python-etcd3
iterators and callbacks, compaction cancel, and a watch that lives through a leader kill."""
import json
import os
import signal
import subprocess
import tempfile
import threading
import time

import pytest

from chainfire_harness import cluster as harness
from chainfire_harness.api import rpc_pb2, rpc_pb2_grpc


@pytest.fixture(scope="module")
def c():
    with harness.Cluster(3) as c:
        yield c


class EtcdctlWatch:
    """`etcdctl watch ...` in the background, its output in a file; stopped by the test."""

    def __init__(self, c, *args):
        self.out = tempfile.NamedTemporaryFile(mode="w+", delete=False)
        env = dict(os.environ, ETCDCTL_API="3")
        self.proc = subprocess.Popen(["etcdctl", "--endpoints=" + c.endpoints, "watch"] +
                                     list(args), stdout=self.out, stderr=subprocess.STDOUT,
                                     env=env)

    def wait_for(self, lines, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.read()
            if got[:len(lines)] == lines:
                return got
            time.sleep(0.05)
        raise AssertionError("watch output %r, expected %r" % (self.read(), lines))

    def read(self):
        with open(self.out.name) as f:
            return f.read().splitlines()

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        os.unlink(self.out.name)


def test_etcdctl_watch_prefix_with_prev_kv(c):
    rev = json.loads(c.etcdctl("put", "wp/a", "1", "-w", "json").stdout)["header"]["revision"]
    # Start right after the first put, so the watch sees the next writes whenever etcdctl
    # gets to create it (no race with its start-up).
    w = EtcdctlWatch(c, "--prefix", "wp/", "--prev-kv", "--rev=%d" % (rev + 1))
    try:
        c.etcdctl("put", "wp/a", "2")
        c.etcdctl("del", "wp/a")
        w.wait_for(["PUT", "wp/a", "1", "wp/a", "2", "DELETE", "wp/a", "2", "wp/a", ""])
    finally:
        w.stop()


def test_etcdctl_watch_replays_history_from_a_revision(c):
    first = json.loads(c.etcdctl("put", "wh", "1", "-w", "json").stdout)["header"]["revision"]
    c.etcdctl("put", "wh", "2")
    c.etcdctl("del", "wh")
    w = EtcdctlWatch(c, "wh", "--rev=%d" % first)
    try:
        w.wait_for(["PUT", "wh", "1", "PUT", "wh", "2", "DELETE", "wh", ""])
    finally:
        w.stop()


def test_watch_from_a_compacted_revision_is_cancelled(c):
    first = json.loads(c.etcdctl("put", "wc", "1", "-w", "json").stdout)["header"]["revision"]
    rev = json.loads(c.etcdctl("put", "wc", "2", "-w", "json").stdout)["header"]["revision"]
    c.etcdctl("compaction", str(rev))
    r = subprocess.run(["etcdctl", "--endpoints=" + c.endpoints, "watch", "wc",
                        "--rev=%d" % first], capture_output=True, text=True, timeout=20,
                       env=dict(os.environ, ETCDCTL_API="3"))
    assert r.returncode != 0
    assert "required revision has been compacted" in r.stdout + r.stderr


def test_python_etcd3_watch_iterator_and_callback(c, clients):
    client = clients(c.members[1].client_port)
    events, cancel = client.watch_prefix("pw/")

    def writer():  # watch_prefix returned once the watch was created
        client.put("pw/x", "1")
        client.put("pw/y", "2")
        client.delete("pw/x")

    t = threading.Thread(target=writer)
    t.start()
    seen = []
    for ev in events:
        seen.append((type(ev).__name__, ev.key))
        if len(seen) == 3:
            cancel()
    t.join(timeout=10)
    assert seen == [("PutEvent", b"pw/x"), ("PutEvent", b"pw/y"), ("DeleteEvent", b"pw/x")]
    got, done = [], threading.Event()

    def callback(resp):
        got.extend(e.value for e in resp.events)
        done.set()

    watch_id = client.add_watch_callback("pcb", callback)
    client.put("pcb", "z")
    assert done.wait(10)
    assert got == [b"z"]
    client.cancel_watch(watch_id)


def test_watch_survives_leader_kill_exactly_once_in_order(clients):
    with harness.Cluster(3) as c:
        leader = c.leader_member()
        follower = next(m for m in c.members if m is not leader)
        client = clients(follower.client_port)
        events, cancel = client.watch_prefix("k/")
        acked, stop = [], threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                i += 1
                r = c.etcdctl("put", "k/%05d" % i, str(i), check=False,
                              endpoints=follower.endpoint, timeout=30)
                if r.returncode == 0:
                    acked.append(i)

        t = threading.Thread(target=writer)
        t.start()
        deadline = time.time() + 20
        while len(acked) < 5 and time.time() < deadline:
            time.sleep(0.05)
        leader.kill(signal.SIGKILL)
        before = len(acked)
        deadline = time.time() + 20
        while len(acked) < before + 5 and time.time() < deadline:
            time.sleep(0.05)
        stop.set()
        t.join(timeout=60)
        last_acked = max(acked)
        revisions, keys = [], []
        for ev in events:
            revisions.append(ev.mod_revision)
            keys.append(int(ev.key[2:]))
            if int(ev.key[2:]) >= last_acked:
                cancel()
        assert revisions == sorted(set(revisions)), "events in revision order, exactly once"
        assert all(i in keys for i in acked), "every acknowledged write was seen"


def _watch_stream(endpoint, create):
    """A raw Watch stream (python grpc) with one create request; returns (responses, close)."""
    import queue
    import grpc
    channel = grpc.insecure_channel(endpoint)
    requests = queue.Queue()
    requests.put(rpc_pb2.WatchRequest(create_request=create))
    stream = rpc_pb2_grpc.WatchStub(channel).Watch(iter(requests.get, None))

    def close():
        requests.put(None)
        stream.cancel()
        channel.close()
    return stream, close


def _next_within(stream, seconds):
    holder = []
    t = threading.Thread(target=lambda: holder.append(next(stream)), daemon=True)
    t.start()
    t.join(seconds)
    assert holder, "no watch response within %ss" % seconds
    return holder[0]


def test_progress_notify_and_fragment(clients):
    c = harness.Cluster(1)
    try:
        c.members[0].start(extra=["--experimental-watch-progress-notify-interval-ms", "500"])
        c.wait_for_leader()
        c.etcdctl("put", "pn", "1")
        stream, close = _watch_stream(c.members[0].endpoint, rpc_pb2.WatchCreateRequest(
            key=b"pn", progress_notify=True))
        try:
            assert _next_within(stream, 10).created
            progress = _next_within(stream, 10)  # nothing happens: a progress response
            assert not progress.events and progress.header.revision >= 2
        finally:
            close()
        # One revision whose events exceed the response limit arrives in fragments.
        client = clients(c.members[0].client_port)
        for i in range(20):
            client.put("fr/%02d" % i, "x" * 100000)
        stream, close = _watch_stream(c.members[0].endpoint, rpc_pb2.WatchCreateRequest(
            key=b"fr/", range_end=b"fr0", prev_kv=True, fragment=True))
        try:
            first = _next_within(stream, 10)
            assert first.created
            client.delete_prefix("fr/")
            parts = [_next_within(stream, 10)]
            while parts[-1].fragment:
                parts.append(_next_within(stream, 10))
            assert len(parts) >= 2, "split into fragments"
            assert sum(len(p.events) for p in parts) == 20
            assert all(p.ByteSize() <= 1572864 + 200000 for p in parts)
        finally:
            close()
    finally:
        c.__exit__(None, None, None)


def test_watch_resumes_after_a_member_restart_without_gaps_or_duplicates(clients):
    with harness.Cluster(3) as c:
        leader = c.leader_member()
        m = next(x for x in c.members if x is not leader)  # restart a follower: writes go on
        client = clients(m.client_port)
        events, cancel = client.watch_prefix("rs/")
        for i in range(5):
            c.etcdctl("put", "rs/%02d" % i, str(i), endpoints=leader.endpoint)
        seen = []
        for ev in events:
            seen.append((ev.key, ev.mod_revision))
            if len(seen) == 5:
                cancel()
        last = seen[-1][1]
        m.kill(signal.SIGKILL)
        for i in range(5, 10):  # written while the member is down
            c.etcdctl("put", "rs/%02d" % i, str(i), endpoints=leader.endpoint)
        m.start()
        c.wait_for_leader(members=c.members)
        client = clients(m.client_port)
        events, cancel = client.watch_prefix("rs/", start_revision=last + 1)
        c.etcdctl("put", "rs/10", "10", endpoints=leader.endpoint)
        for ev in events:
            seen.append((ev.key, ev.mod_revision))
            if len(seen) == 11:
                cancel()
        assert [k for k, _ in seen] == [b"rs/%02d" % i for i in range(11)]
        revisions = [r for _, r in seen]
        assert revisions == sorted(set(revisions)), "exactly once, in revision order"
