"""Shared pieces of the test-cluster lanes (nix/test-cluster/cluster) and the multi-process
tests: real chainfire members on loopback, etcdctl and chainfire-backup as subprocesses, and
the parsers of what those probes print (tested on recorded fixtures in tests/cluster)."""
import base64
import json
import os
import signal
import socket
import subprocess
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN_DIR = os.environ.get("CHAINFIRE_BIN_DIR", os.path.join(REPO, "build", "bin"))


def free_ports(n):
    """Returns n distinct ports that were free when asked."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def parse_endpoint_status(text):
    """Parses `etcdctl endpoint status -w json` into {endpoint: status dict}."""
    out = {}
    for item in json.loads(text or "[]"):
        out[item["Endpoint"]] = item["Status"]
    return out


def parse_member_list(text):
    """Parses `etcdctl member list -w json` into (hex id, name, peer urls, client urls) tuples."""
    members = []
    for m in json.loads(text)["members"]:
        members.append(("%x" % m["ID"], m.get("name", ""), m.get("peerURLs", []),
                        m.get("clientURLs", [])))
    return members


def parse_get_json(text):
    """Parses `etcdctl get -w json` into {key: (value, create, mod, version, lease)}: keys as
    latin-1 text, values as bytes (etcdctl prints both base64-encoded and leaves out zero
    fields)."""
    out = {}
    for kv in json.loads(text).get("kvs", []):
        key = base64.b64decode(kv["key"]).decode("latin-1")
        out[key] = (base64.b64decode(kv.get("value", "")), kv.get("create_revision", 0),
                    kv.get("mod_revision", 0), kv.get("version", 0), kv.get("lease", 0))
    return out


def diff_key_maps(expected, got):
    """Differences between two parse_get_json maps, key by key, in key order."""
    diffs = []
    for k in sorted(set(expected) | set(got)):
        if expected.get(k) != got.get(k):
            diffs.append({"key": k, "expected": repr(expected.get(k))[:200],
                          "got": repr(got.get(k))[:200]})
    return diffs


def parse_hashkv(text):
    """Parses `etcdctl endpoint hashkv -w json` into {endpoint: (hash, revision)}."""
    out = {}
    for item in json.loads(text or "[]"):
        h = item["HashKV"]
        out[item["Endpoint"]] = (h.get("hash", 0), h.get("header", {}).get("revision", 0))
    return out


def member_summary(name, endpoint, up, status):
    """One member's line of `cluster status` from its `endpoint status` dict (None: no answer)."""
    out = {"name": name, "endpoint": endpoint, "up": bool(up and status)}
    if status:
        out.update({"leader": status.get("leader", 0) == status["header"]["member_id"],
                    "leader_id": "%x" % status.get("leader", 0),
                    "term": status.get("raftTerm", 0),
                    "revision": status["header"].get("revision", 0),
                    "applied_index": status.get("raftAppliedIndex", 0)})
    return out


def leader_of(statuses):
    """The leader ID all given statuses agree on, or None."""
    leaders = {s.get("leader", 0) for s in statuses.values()}
    if len(leaders) == 1:
        leader = leaders.pop()
        if leader:
            return leader
    return None


def etcdctl(endpoints, *args, timeout=30, check=True, command_timeout="10s"):
    """Runs etcdctl (v3 API); a run past `timeout` counts as a failure (return code -1)."""
    env = dict(os.environ, ETCDCTL_API="3")
    cmd = ["etcdctl", "--endpoints=" + endpoints, "--dial-timeout=2s",
           "--command-timeout=" + command_timeout] + list(args)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        r = subprocess.CompletedProcess(cmd, -1, "", "timed out after %ss" % timeout)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
    return r


def backup_tool(*args, check=True, timeout=300):
    cmd = [os.path.join(BIN_DIR, "chainfire-backup")] + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
    return r


class LaneCluster:
    """A fixed-membership cluster of real members; every process it starts it stops."""

    def __init__(self, root, names, token, extra_args=()):
        self.root = root
        self.token = token
        self.extra_args = list(extra_args)
        ports = free_ports(2 * len(names))
        self.members = [{"name": n, "client": ports[2 * i], "peer": ports[2 * i + 1],
                         "data_dir": os.path.join(root, n), "log": os.path.join(root, n + ".log"),
                         "proc": None, "extra_args": []} for i, n in enumerate(names)]
        self.initial_cluster = ",".join("%s=http://127.0.0.1:%d" % (m["name"], m["peer"])
                                        for m in self.members)

    @property
    def endpoints(self):
        return ",".join("127.0.0.1:%d" % m["client"] for m in self.members)

    def peer_url(self, m):
        return "http://127.0.0.1:%d" % m["peer"]

    def start(self, timeout=30, detach=False):
        """Starts every member and waits (bounded) for an agreed leader. `detach`: the members
        outlive this process (own session), for `cluster start`."""
        for m in self.members:
            self.start_member(m, detach)
        return self.wait_for_leader(timeout)

    def member_args(self, m, initial_cluster=None, state="new"):
        return [os.path.join(BIN_DIR, "chainfire"), "--name", m["name"],
                "--data-dir", m["data_dir"],
                "--listen-client-urls", "http://127.0.0.1:%d" % m["client"],
                "--listen-peer-urls", self.peer_url(m),
                "--initial-advertise-peer-urls", self.peer_url(m),
                "--initial-cluster", initial_cluster or self.initial_cluster,
                "--initial-cluster-token", self.token,
                "--initial-cluster-state", state] + self.extra_args + m["extra_args"]

    def start_member(self, m, detach=False, state="new"):
        os.makedirs(self.root, exist_ok=True)
        log = open(m["log"], "a")
        m["proc"] = subprocess.Popen(self.member_args(m, state=state), stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=detach)
        log.close()

    def run_member_to_exit(self, m, timeout=20, **kw):
        """Starts `m` expecting it to refuse; returns (exit code, output). A member that keeps
        running past `timeout` is killed and reported with exit code None."""
        try:
            r = subprocess.run(self.member_args(m, **kw), capture_output=True, text=True,
                               timeout=timeout)
            return r.returncode, r.stdout + r.stderr
        except subprocess.TimeoutExpired as e:
            return None, (e.stdout or b"").decode(errors="replace")

    def stop_member(self, m, sig=signal.SIGTERM, timeout=15):
        """Signals one member and waits (bounded) for it to exit; returns its exit code."""
        p = m["proc"]
        if p is None or p.poll() is not None:
            return None
        p.send_signal(sig)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
            raise RuntimeError("member %s did not exit within %ss of signal %d" %
                               (m["name"], timeout, sig))

    def endpoint(self, m):
        return "127.0.0.1:%d" % m["client"]

    def member_status(self, m):
        """The member's endpoint status dict, or None when it does not answer."""
        r = etcdctl(self.endpoint(m), "endpoint", "status", "-w", "json", check=False,
                    timeout=10, command_timeout="3s")
        try:
            return parse_endpoint_status(r.stdout).get(self.endpoint(m))
        except ValueError:
            return None

    def leader_member(self):
        leader = self.wait_for_leader()
        for m in self.members:
            st = self.member_status(m)
            if st and st["header"]["member_id"] == leader:
                return m
        raise RuntimeError("leader %x is not among the members" % leader)

    def statuses(self):
        r = etcdctl(self.endpoints, "endpoint", "status", "-w", "json", check=False)
        try:
            return parse_endpoint_status(r.stdout)
        except ValueError:
            return {}

    def wait_for_leader(self, timeout=30):
        deadline = time.time() + timeout
        last = {}
        while time.time() < deadline:
            for m in self.members:
                if m["proc"] is not None and m["proc"].poll() is not None:
                    raise RuntimeError("member %s exited: see %s" % (m["name"], m["log"]))
            last = self.statuses()
            if len(last) == len(self.members) and leader_of(last):
                return leader_of(last)
            time.sleep(0.1)
        raise RuntimeError("no agreed leader within %ss: %s" % (timeout, last))

    def stop(self, sig=signal.SIGTERM, timeout=15):
        for m in self.members:
            p = m["proc"]
            if p is None or p.poll() is not None:
                continue
            p.send_signal(sig)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        for m in self.members:
            m["proc"] = None

    def all_keys(self):
        return parse_get_json(etcdctl(self.endpoints, "get", "", "--prefix", "-w", "json").stdout)


def write_json(path, obj):
    """Writes a lane's evidence file (sorted keys, indented, newline-terminated)."""
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def run_stamp():
    """The name of one lane run's evidence directory: local time and pid."""
    import datetime
    return datetime.datetime.now().strftime("%Y%m%dT%H%M%S") + "-%d" % os.getpid()


def is_chainfire(pid):
    """True when `pid` is a running chainfire process (not a recycled pid)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return os.path.basename(f.read().split(b"\0")[0]) == b"chainfire"
    except OSError:
        return False


def stop_pids(pids, timeout=15):
    """SIGTERM, a bounded wait, then SIGKILL for what is left."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + timeout
    while time.time() < deadline and any(is_chainfire(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if is_chainfire(pid):
            os.kill(pid, signal.SIGKILL)
