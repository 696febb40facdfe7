"""Starts and stops real chainfire members on loopback for the multi-process tests.

Every member is a real `chainfire` process on ports chosen free at start; every wait is
bounded; every process is stopped by the test (the `Cluster` context manager kills what is
left). Clients are the real `etcdctl` (ETCDCTL_API=3) and python-etcd3.
"""
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time

CHAINFIRE = os.environ.get(
    "CHAINFIRE_BIN",
    os.path.join(os.path.dirname(__file__), "..", "..", "build", "bin", "chainfire"))


# The probes' parsers are shared with the operator lanes (and tested in test_parsing.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "nix",
                                "test-cluster"))
from chainfire_lanes import (free_ports, leader_of, parse_endpoint_status,  # noqa: E402,F401
                             parse_get_json, parse_member_list)


class Member:
    def __init__(self, cluster, name, client_port, peer_port):
        self.cluster = cluster
        self.name = name
        self.client_port = client_port
        self.peer_port = peer_port
        self.data_dir = os.path.join(cluster.dir, name)
        self.log_path = os.path.join(cluster.dir, name + ".log")
        self.proc = None

    @property
    def endpoint(self):
        return "127.0.0.1:%d" % self.client_port

    @property
    def peer_url(self):
        return "http://127.0.0.1:%d" % self.peer_port

    def args(self, initial_cluster=None, state="new", extra=()):
        return [CHAINFIRE, "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", "http://" + self.endpoint,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster or self.cluster.initial_cluster,
                "--initial-cluster-token", self.cluster.token,
                "--initial-cluster-state", state,
                "--heartbeat-interval", "50", "--election-timeout", "500"] + list(extra)

    def start(self, **kw):
        assert self.proc is None or self.proc.poll() is not None
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.args(**kw), stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def run_to_exit(self, timeout=20, **kw):
        """Runs the member expecting it to refuse to start; returns (exit code, output)."""
        r = subprocess.run(self.args(**kw), capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL, timeout=15):
        if not self.alive():
            return None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise AssertionError("%s did not exit within %ss of signal %s" % (self.name, timeout, sig))

    def log(self):
        with open(self.log_path) as f:
            return f.read()


class Cluster:
    """A cluster of n members; use as a context manager so every process is stopped."""

    def __init__(self, n=3, token=None, names=None, extra=()):
        self.dir = tempfile.mkdtemp(prefix="chainfire-cluster-")
        self.token = token or "test-%d" % os.getpid()
        ports = free_ports(2 * n)
        names = names or ["n%d" % (i + 1) for i in range(n)]
        self.extra = list(extra)  # flags every member starts with
        self.members = [Member(self, names[i], ports[2 * i], ports[2 * i + 1])
                        for i in range(n)]
        self.initial_cluster = ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)

    def __enter__(self):
        for m in self.members:
            m.start(extra=self.extra)
        self.wait_for_leader()
        self.wait_for_published()
        return self

    def wait_for_published(self, timeout=20):
        """Waits until every running member has published its name through the log."""
        names = {m.name for m in self.members if m.alive()}
        deadline = time.time() + timeout
        seen = set()
        while time.time() < deadline:
            r = self.etcdctl("member", "list", "-w", "json", check=False)
            if r.returncode == 0:
                seen = {x[1] for x in parse_member_list(r.stdout)}
                if names <= seen:
                    return
            time.sleep(0.1)
        raise AssertionError("members %s not published within %ss (seen %s)" %
                             (names - seen, timeout, seen))

    @contextlib.contextmanager
    def started(self):
        """`with cluster.started():` — for a cluster whose data dirs were prepared first."""
        with self:
            yield self

    def __exit__(self, *exc):
        for m in self.members:
            try:
                m.kill(signal.SIGKILL)
            except AssertionError:
                pass
        subprocess.run(["rm", "-rf", self.dir])

    @property
    def endpoints(self):
        return ",".join(m.endpoint for m in self.members if m.alive())

    def member(self, name):
        return next(m for m in self.members if m.name == name)

    def etcdctl(self, *args, endpoints=None, timeout=20, check=True):
        env = dict(os.environ, ETCDCTL_API="3")
        cmd = ["etcdctl", "--endpoints=" + (endpoints or self.endpoints),
               "--dial-timeout=2s", "--command-timeout=5s"] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr))
        return r

    def statuses(self, members=None):
        members = members or [m for m in self.members if m.alive()]
        r = self.etcdctl("endpoint", "status", "-w", "json",
                         endpoints=",".join(m.endpoint for m in members), check=False)
        return parse_endpoint_status(r.stdout)

    def wait_for_leader(self, members=None, timeout=20):
        """Waits until every given (default: running) member reports the same leader."""
        members = members or [m for m in self.members if m.alive()]
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = self.statuses(members)
            if len(last) == len(members):
                leader = leader_of(last)
                if leader:
                    return leader
            time.sleep(0.1)
        raise AssertionError("no agreed leader within %ss: %s" % (timeout, last))

    def leader_member(self):
        leader = self.wait_for_leader()
        for endpoint, status in self.statuses().items():
            if status["header"]["member_id"] == leader:
                return next(m for m in self.members if m.endpoint == endpoint)
        raise AssertionError("leader %x is not among the members" % leader)


@contextlib.contextmanager
def etcd_client(port, **kw):
    """A python-etcd3 client on 127.0.0.1:`port`, closed on exit with its watch thread joined.

    python-etcd3 runs watches on a daemon thread that holds a gRPC stream for as long as the
    channel is open; such a thread still inside gRPC when the interpreter exits can crash it
    (SIGSEGV after every test passed). Closing the channel ends the stream, and the thread is
    joined (bounded) before the test goes on.

    Each client has its own gRPC subchannels: by default gRPC shares them between channels to
    the same address, so a client made after a member restarted would inherit the old one's
    reconnect backoff and fail at once with "Connection refused".
    """
    import etcd3
    client = etcd3.client(host="127.0.0.1", port=port,
                          grpc_options=[("grpc.use_local_subchannel_pool", 1)], **kw)
    try:
        yield client
    finally:
        client.close()
        thread = client.watcher._callback_thread
        if thread is not None:
            thread.join(timeout=10)
            assert not thread.is_alive(), "python-etcd3 watch thread still running after close"


def read_varint(data, pos):
    """Decodes a protobuf varint at `pos`; returns (value, next position)."""
    value, shift = 0, 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def top_level_varints(data):
    """{field number: value} of the varint fields at the top level of a protobuf message (for
    fields the bundled python-etcd3 protos do not know, such as WatchResponse.fragment)."""
    out, pos = {}, 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            out[field], pos = read_varint(data, pos)
        elif wire == 2:
            n, pos = read_varint(data, pos)
            pos += n
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
    return out
