"""The probes of the multi-process tests and the operator lanes: etcdctl and chainfire-backup as
subprocesses, free ports, process checks, evidence files, and the parsers of what the probes
print (tested on recorded fixtures in tests/cluster/test_parsing.py)."""
import base64
import json
import os
import signal
import socket
import subprocess
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN_DIR = os.environ.get("CHAINFIRE_BIN_DIR", os.path.join(REPO, "build", "bin"))


class HarnessError(AssertionError):
    """A probe or a wait failed (an AssertionError, so pytest reports it as a test failure)."""


# Every port free_ports has handed out in this process: a port a test was given and has not
# bound yet (a member still starting) is free to the kernel, which may offer it again.
_ports_handed_out = set()
_ports_lock = threading.Lock()


def free_ports(n):
    """Returns n distinct ports that were free when asked and that no earlier call of this
    process returned."""
    socks, ports = [], []
    with _ports_lock:
        try:
            while len(ports) < n:
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                socks.append(s)  # held until all are chosen, so the kernel offers each once
                port = s.getsockname()[1]
                if port not in _ports_handed_out:
                    ports.append(port)
                    _ports_handed_out.add(port)
        finally:
            for s in socks:
                s.close()
    return ports


def parse_endpoint_status(text):
    """Parses `etcdctl endpoint status -w json` into {endpoint: status dict}."""
    out = {}
    for item in json.loads(text or "[]"):
        out[item["Endpoint"]] = item["Status"]
    return out


# The kernel's names of the scheduling policies in /proc/<pid>/task/<tid>/stat (field 41).
SCHED_POLICY_NAMES = {0: "normal", 1: "fifo", 2: "rr", 3: "batch", 5: "idle", 6: "deadline"}


def parse_thread_policy(stat_line):
    """(thread name, policy name) from one /proc/<pid>/task/<tid>/stat line. The name is in
    parentheses and may hold spaces and parentheses itself, so fields are counted after the
    last ')'; the policy is the 41st field of the line."""
    open_paren, close_paren = stat_line.index("("), stat_line.rindex(")")
    name = stat_line[open_paren + 1:close_paren]
    rest = stat_line[close_paren + 2:].split()  # fields 3 onwards
    policy = int(rest[41 - 3])
    return name, SCHED_POLICY_NAMES.get(policy, str(policy))


WAL_BLOCK_BYTES = 32768  # RocksDB's log format: records in 32 KiB blocks
WAL_HEADER_BYTES = 7  # masked CRC32C (4), payload length (2, little-endian), type (1)


def wal_records(data):
    """[(offset, type, payload length)] of the records at the start of a RocksDB WAL file's
    bytes, up to the first all-zero header (what follows is preallocated space, or nothing). A
    block's tail shorter than a header is padding. Checksums are not checked."""
    records, p = [], 0
    while p + WAL_HEADER_BYTES <= len(data):
        left = WAL_BLOCK_BYTES - p % WAL_BLOCK_BYTES
        if left < WAL_HEADER_BYTES:
            p += left
            continue
        length = int.from_bytes(data[p + 4:p + 6], "little")
        kind = data[p + 6]
        if kind == 0 and length == 0:
            break
        records.append((p, kind, length))
        p += WAL_HEADER_BYTES + length
    return records


def wal_records_end(path):
    """The offset just past the last record of the WAL file at `path` (an open WAL is
    preallocated: zeros follow its records up to the file's size)."""
    with open(path, "rb") as f:
        records = wal_records(f.read())
    if not records:
        return 0
    offset, _, length = records[-1]
    return offset + WAL_HEADER_BYTES + length


def parse_thread_cpu_ticks(stat_line):
    """(thread name, CPU time in clock ticks: user + system, fields 14 and 15) from one
    /proc/<pid>/task/<tid>/stat line."""
    open_paren, close_paren = stat_line.index("("), stat_line.rindex(")")
    rest = stat_line[close_paren + 2:].split()  # fields 3 onwards
    return stat_line[open_paren + 1:close_paren], int(rest[14 - 3]) + int(rest[15 - 3])


def _thread_stat_lines(pid):
    """(tid, /proc/<pid>/task/<tid>/stat line) of each thread of a running process (threads
    that end meanwhile are left out)."""
    task_dir = "/proc/%d/task" % pid
    for tid in os.listdir(task_dir):
        try:
            with open(os.path.join(task_dir, tid, "stat")) as f:
                yield int(tid), f.read()
        except FileNotFoundError:
            continue


def thread_cpu_ticks(pid, name):
    """{tid: CPU ticks} of a running process's threads called `name`."""
    out = {}
    for tid, line in _thread_stat_lines(pid):
        thread, ticks = parse_thread_cpu_ticks(line)
        if thread == name:
            out[tid] = ticks
    return out


def thread_policies(pid):
    """{thread name: set of policy names} over a running process's threads."""
    out = {}
    for _, line in _thread_stat_lines(pid):
        name, policy = parse_thread_policy(line)
        out.setdefault(name, set()).add(policy)
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
        raise HarnessError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
    return r


def tool(name, *args, check=True, timeout=300):
    """Runs build/bin/`name` (chainfire-backup, chainfire-bench) with `args`."""
    cmd = [os.path.join(BIN_DIR, name)] + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise HarnessError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
    return r


def backup_tool(*args, check=True, timeout=300):
    return tool("chainfire-backup", *args, check=check, timeout=timeout)


class Workers:
    """Threads a lane starts together and stops together (its traffic): subclasses add them to
    `threads` and return when `stop` is set; `finish` sets it and joins them (bounded)."""

    join_timeout = 30

    def __init__(self):
        self.stop = threading.Event()
        self.threads = []

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=self.join_timeout)


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


def raw_exchange(port, data, timeout=10):
    """What 127.0.0.1:`port` answers to the bytes `data` before it closes or goes quiet for
    `timeout` seconds (b"" when it just closes): for requests no HTTP client would send."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        out = b""
        try:
            s.sendall(data)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            pass
        return out
