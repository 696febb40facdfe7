"""Real chainfire members on loopback: the one harness of the multi-process tests and the
operator lanes.

Every member is a real `chainfire` process on ports chosen free at start; every wait is
bounded; every process a `Cluster` starts it stops (use it as a context manager, or call
`stop()`). Clients are the real `etcdctl` (ETCDCTL_API=3) and python-etcd3.
"""
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time

from chainfire_harness import certs
from chainfire_harness.probes import (BIN_DIR, HarnessError, etcdctl, free_ports,  # noqa: F401
                                      leader_of, parse_endpoint_status, parse_get_json,
                                      parse_member_list)

CHAINFIRE = os.environ.get("CHAINFIRE_BIN", os.path.join(BIN_DIR, "chainfire"))

# Timing for tests: elections in half a second instead of etcd's default second, so faults
# heal fast. The lanes run the defaults (`timing=()`).
FAST_TIMING = ("--heartbeat-interval", "50", "--election-timeout", "500")


class ClientTls:
    """Client TLS of a cluster: the members' server certificate and key, the CA bundle, and the
    certificate and key etcdctl presents."""

    def __init__(self, ca, server_cert, server_key, client_cert, client_key,
                 client_cert_auth=True):
        self.ca, self.server_cert, self.server_key = ca, server_cert, server_key
        self.client_cert, self.client_key = client_cert, client_key
        self.client_cert_auth = client_cert_auth


class PeerTls:
    """Peer TLS of a cluster: every member's peer certificate and key (one pair for all, valid
    for 127.0.0.1) and the peer CA bundle."""

    def __init__(self, ca, cert, key, client_cert_auth=True):
        self.ca, self.cert, self.key = ca, cert, key
        self.client_cert_auth = client_cert_auth


def make_tls(directory):
    """Certificates for a cluster with mutual TLS on both ports, made under `directory`: a CA,
    one certificate every member serves and dials with (127.0.0.1, localhost) and a client
    certificate; returns (ClientTls, PeerTls)."""
    os.makedirs(directory, exist_ok=True)
    ca = certs.make_ca(directory, "cluster-ca")
    member = certs.make_cert(directory, "member", ca)
    client = certs.make_cert(directory, "client", ca)
    return (ClientTls(ca[0], member[0], member[1], client[0], client[1]),
            PeerTls(ca[0], member[0], member[1]))


class Member:
    """One member: its ports, data dir and log, and the process while it runs."""

    def __init__(self, cluster, name, client_port, peer_port, metrics_port=None):
        self.cluster = cluster
        self.name = name
        self.client_port = client_port
        self.peer_port = peer_port
        self.metrics_port = metrics_port  # --listen-metrics-urls, when the cluster has one
        self.data_dir = os.path.join(cluster.dir, name)
        self.log_path = os.path.join(cluster.dir, name + ".log")
        self.extra = []  # flags this member starts with, after the cluster's
        self.proc = None
        self.stopped = False  # stopped by kill(), not on its own

    @property
    def endpoint(self):
        return "127.0.0.1:%d" % self.client_port

    @property
    def peer_url(self):
        scheme = "https" if self.cluster.peer_tls else "http"
        return "%s://127.0.0.1:%d" % (scheme, self.peer_port)

    def args(self, initial_cluster=None, state="new", extra=None, client_urls=None):
        """The command line; `extra` (default: the cluster's and this member's flags) last.
        `client_urls`: --listen-client-urls (default: this member's one URL, https:// when the
        cluster has client TLS)."""
        if extra is None:
            extra = self.cluster.extra + self.extra
        tls = self.cluster.client_tls
        scheme = "https://" if tls else "http://"
        tls_flags = []
        if tls:
            tls_flags = ["--cert-file", tls.server_cert, "--key-file", tls.server_key,
                         "--trusted-ca-file", tls.ca]
            if tls.client_cert_auth:
                tls_flags.append("--client-cert-auth")
        peer = self.cluster.peer_tls
        if peer:
            tls_flags += ["--peer-cert-file", peer.cert, "--peer-key-file", peer.key,
                          "--peer-trusted-ca-file", peer.ca]
            if peer.client_cert_auth:
                tls_flags.append("--peer-client-cert-auth")
        if self.metrics_port:
            tls_flags += ["--listen-metrics-urls", "http://127.0.0.1:%d" % self.metrics_port]
        return [CHAINFIRE, "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", client_urls or scheme + self.endpoint,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster or self.cluster.initial_cluster,
                "--initial-cluster-token", self.cluster.token,
                "--initial-cluster-state", state] + tls_flags + list(self.cluster.timing) + list(extra)

    def start(self, detach=False, **kw):
        """Starts the process. `detach`: it outlives this one (own session), for the lanes'
        `cluster start`."""
        assert not self.alive(), "%s is already running" % self.name
        os.makedirs(self.cluster.dir, exist_ok=True)
        log = open(self.log_path, "a")
        self.stopped = False
        self.proc = subprocess.Popen(self.args(**kw), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=detach)
        log.close()

    def run_to_exit(self, timeout=20, **kw):
        """Runs the member expecting it to refuse to start; returns (exit code, output). One
        still running after `timeout` is killed and reported with exit code None."""
        try:
            r = subprocess.run(self.args(**kw), capture_output=True, text=True, timeout=timeout)
            return r.returncode, r.stdout + r.stderr
        except subprocess.TimeoutExpired as e:
            out = e.stdout or b""
            return None, out.decode(errors="replace") if isinstance(out, bytes) else out

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def crashed(self):
        """True when the process was started and has exited without being stopped by kill()."""
        return self.proc is not None and self.proc.poll() is not None and not self.stopped

    def kill(self, sig=signal.SIGKILL, timeout=15):
        """Signals the process and waits (bounded) for it to exit; returns its exit code (None
        when it was not running). One that does not exit is killed and reported."""
        if not self.alive():
            return None
        self.stopped = True
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise HarnessError("%s did not exit within %ss of signal %s" %
                               (self.name, timeout, sig))

    def status(self):
        """This member's `endpoint status` dict, or None when it does not answer."""
        r = self.cluster.etcdctl("endpoint", "status", "-w", "json", endpoints=self.endpoint,
                                 check=False, timeout=10, command_timeout="3s")
        try:
            return parse_endpoint_status(r.stdout).get(self.endpoint)
        except ValueError:
            return None

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def log_tail(self, lines=20):
        """The last lines of this member's log (for failure messages: a test's temporary
        directory, and the log with it, is removed when the test ends)."""
        try:
            return "\n".join(self.log().splitlines()[-lines:])
        except OSError as e:
            return "(no log: %s)" % e


class Cluster:
    """A fixed-membership cluster of real members.

    `Cluster(3)` for a test (a temporary directory, removed on exit; fast timing), or
    `Cluster(names=[...], root=dir, token=..., timing=())` for a lane (evidence kept in `root`;
    etcd's default timing). `extra`: flags every member starts with; `metrics`: each member
    serves /metrics and /health on a port of its own (`Member.metrics_port`)."""

    def __init__(self, n=None, names=None, token=None, root=None, extra=(), timing=FAST_TIMING,
                 client_tls=None, peer_tls=None, metrics=False):
        names = list(names) if names else ["n%d" % (i + 1) for i in range(n or 3)]
        self.owns_dir = root is None
        self.dir = root or tempfile.mkdtemp(prefix="chainfire-cluster-")
        self.token = token or "test-%d" % os.getpid()
        self.extra = list(extra)
        self.timing = tuple(timing)
        self.client_tls = client_tls  # a ClientTls: members serve https://, etcdctl speaks TLS
        self.peer_tls = peer_tls  # a PeerTls: https:// peer URLs, mutual TLS between members
        per = 3 if metrics else 2  # client, peer (and metrics) port of each member
        ports = free_ports(per * len(names))
        self.members = [Member(self, name, *ports[per * i:per * (i + 1)])
                        for i, name in enumerate(names)]
        self.initial_cluster = ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)

    # ---- lifecycle

    def start(self, timeout=30, detach=False):
        """Starts every member, waits (bounded) for an agreed leader and for every member's
        published name; returns the leader's ID."""
        for m in self.members:
            m.start(detach=detach)
        leader = self.wait_for_leader(timeout=timeout)
        self.wait_for_published(timeout=timeout)
        return leader

    def __enter__(self):
        self.start()
        return self

    @contextlib.contextmanager
    def started(self):
        """`with cluster.started():` for a cluster whose data dirs were prepared first."""
        with self:
            yield self

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Signals every running member and waits (bounded) for each; kills what does not exit."""
        for m in self.members:
            try:
                m.kill(sig, timeout)
            except HarnessError:
                pass

    def __exit__(self, *exc):
        self.stop(signal.SIGKILL)
        if self.owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- probes

    @property
    def endpoints(self):
        """The client endpoints of the running members (of all members before any started)."""
        running = [m for m in self.members if m.alive()] or self.members
        return ",".join(m.endpoint for m in running)

    def member(self, name):
        return next(m for m in self.members if m.name == name)

    def client_flags(self):
        """etcdctl's TLS flags for this cluster's clients (chainfire-backup and chainfire-bench
        take the same); none without client TLS."""
        tls = self.client_tls
        return ["--cacert", tls.ca, "--cert", tls.client_cert, "--key", tls.client_key] if tls else []

    def plaintext_refused(self):
        """True when every running member refuses a plaintext client (etcdctl without TLS
        flags): the proof that a TLS cluster is one."""
        return all(etcdctl(m.endpoint, "get", "probe", check=False, timeout=20,
                           command_timeout="3s").returncode != 0
                   for m in self.members if m.alive())

    def etcd3_kwargs(self):
        """python-etcd3's TLS arguments for this cluster's clients."""
        tls = self.client_tls
        if not tls:
            return {}
        return {"ca_cert": tls.ca, "cert_cert": tls.client_cert, "cert_key": tls.client_key}

    def etcdctl(self, *args, endpoints=None, timeout=20, check=True, command_timeout="5s"):
        return etcdctl(endpoints or self.endpoints, *self.client_flags(), *args, timeout=timeout,
                       check=check, command_timeout=command_timeout)

    def statuses(self, members=None):
        """{endpoint: status} of the given (default: running) members that answer."""
        members = members or [m for m in self.members if m.alive()]
        r = self.etcdctl("endpoint", "status", "-w", "json",
                         endpoints=",".join(m.endpoint for m in members), check=False)
        try:
            return parse_endpoint_status(r.stdout)
        except ValueError:
            return {}

    def wait_for_leader(self, members=None, timeout=20):
        """Waits until every given (default: running) member reports the same leader; fails at
        once when a member that was started has exited."""
        members = members or [m for m in self.members if m.alive()]
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            for m in members:
                if m.crashed():
                    raise HarnessError("member %s exited (%s): see %s, which ends:\n%s" %
                                       (m.name, m.proc.returncode, m.log_path, m.log_tail()))
            last = self.statuses(members)
            if len(last) == len(members):
                leader = leader_of(last)
                if leader:
                    return leader
            time.sleep(0.1)
        raise HarnessError("no agreed leader within %ss: %s" % (timeout, last))

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
        raise HarnessError("members %s not published within %ss (seen %s)" %
                           (names - seen, timeout, seen))

    def leader_member(self):
        leader = self.wait_for_leader()
        for endpoint, status in self.statuses().items():
            if status["header"]["member_id"] == leader:
                return next(m for m in self.members if m.endpoint == endpoint)
        raise HarnessError("leader %x is not among the members" % leader)

    def all_keys(self):
        return parse_get_json(self.etcdctl("get", "", "--prefix", "-w", "json").stdout)


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
