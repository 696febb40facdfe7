"""The rollout-soak lane: rolling restarts and power-loss rounds under traffic.

With writers and readers running the whole time it (1) restarts each member in turn gracefully
(SIGTERM: a leader hands leadership over first) and (2) runs power-loss rounds: SIGKILL of a
random member (the leader in every other round) and a restart, with every member on the
test-only power-loss file system (--testing-power-loss-fs), so a kill loses exactly what a
power loss would; the last round kills every member at once. After each restart it writes and
reads back through the restarted member. At the end every acknowledged write must read back
unchanged, and every member must reach the same revision and HashKV.
"""
import collections
import os
import random
import signal
import threading
import time

from chainfire_harness import probes
from chainfire_harness.cluster import Cluster, make_tls

try:
    import etcd3  # python3-etcd3
    import grpc
except ImportError:  # the lane reports it; parsing helpers below still import
    etcd3 = None
    grpc = None


def classify_error(code_name, details):
    """Maps a gRPC status (code name, details) to the error category the lane counts."""
    d = (details or "").lower()
    if "leader changed" in d:
        return "leader-changed"
    if "no leader" in d:
        return "no-leader"
    if "request timed out" in d or code_name == "DEADLINE_EXCEEDED":
        return "timeout"
    if "server stopped" in d:
        return "server-stopped"
    if code_name == "UNAVAILABLE":
        return "connection-unavailable"
    return "other:%s" % code_name


def classify_exception(exc):
    """The category of an exception raised by python-etcd3 (which hides the gRPC error in
    __context__) or by grpc itself."""
    rpc = exc if grpc is not None and isinstance(exc, grpc.RpcError) else exc.__context__
    if rpc is not None and hasattr(rpc, "code") and hasattr(rpc, "details"):
        try:
            return classify_error(rpc.code().name, rpc.details())
        except Exception:  # a channel-level error without a status
            pass
    return "other:%s" % type(exc).__name__


def leaderless(statuses, up_ids):
    """True when no reachable member names a leader that is itself up."""
    return not any(s.get("leader") in up_ids for s in statuses.values())


class Traffic(probes.Workers):
    """Writers of unique keys and readers of acknowledged ones, failing over between members."""

    def __init__(self, cluster, writers=2, readers=1):
        super().__init__()
        self.cluster = cluster
        self.acked = {}
        self.unknown = set()
        self.errors = collections.Counter()
        self.stale_reads = []
        self.reads = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._writer, args=(i,), daemon=True)
                        for i in range(writers)]
        self.threads += [threading.Thread(target=self._reader, args=(i,), daemon=True)
                         for i in range(readers)]

    def _client(self, index):
        m = self.cluster.members[index % len(self.cluster.members)]
        return etcd3.client("127.0.0.1", m.client_port, timeout=5,
                            **self.cluster.etcd3_kwargs())

    def _writer(self, n):
        seq, index = 0, n
        client = self._client(index)
        while not self.stop.is_set():
            seq += 1
            key, value = "soak/w%d/%08d" % (n, seq), "v%d-%d" % (n, seq)
            try:
                client.put(key, value)
                with self.lock:
                    self.acked[key] = value
            except Exception as e:  # noqa: BLE001 - every failure is counted by type
                with self.lock:
                    self.errors[classify_exception(e)] += 1
                    self.unknown.add(key)
                client.close()
                index += 1
                client = self._client(index)
                self.stop.wait(0.05)
        client.close()

    def _reader(self, n):
        rnd, index = random.Random(n), n + 1
        client = self._client(index)
        while not self.stop.is_set():
            with self.lock:
                keys = list(self.acked.items())[-200:]
            if not keys:
                self.stop.wait(0.05)
                continue
            key, value = rnd.choice(keys)
            try:
                got, _ = client.get(key)
                with self.lock:
                    self.reads += 1
                    if got is None or got.decode() != value:
                        self.stale_reads.append(key)
            except Exception as e:  # noqa: BLE001
                with self.lock:
                    self.errors["read:" + classify_exception(e)] += 1
                client.close()
                index += 1
                client = self._client(index)
                self.stop.wait(0.05)
        client.close()


class LeaderMonitor:
    """Polls every member's Status; records the longest time without a live leader."""

    def __init__(self, cluster, interval=0.1):
        self.cluster, self.interval = cluster, interval
        self.longest = 0.0
        self.windows = []  # [start, end] of each leaderless window, seconds since start()
        self.polls = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _status(self, m):
        from etcd3 import etcdrpc
        c = etcd3.client("127.0.0.1", m.client_port, timeout=1, **self.cluster.etcd3_kwargs())
        try:
            r = c.maintenancestub.Status(etcdrpc.StatusRequest(), 1)
            return {"id": r.header.member_id, "leader": r.leader}
        finally:
            c.close()

    def _run(self):
        since = None
        t0 = time.time()
        while not self.stop.is_set():
            self.polls += 1
            statuses = {}
            for m in self.cluster.members:
                try:
                    statuses[m.name] = self._status(m)
                except Exception:  # noqa: BLE001 - a member down or restarting
                    continue
            now = time.time()
            # A window runs from the first poll without a live leader to the first poll with
            # one again (so it may overstate by one poll interval, never understate).
            if leaderless(statuses, {s["id"] for s in statuses.values()}):
                if since is None:
                    since = now
                    self.windows.append([round(now - t0, 3), None])
            elif since is not None:
                self.longest = max(self.longest, now - since)
                self.windows[-1][1] = round(now - t0, 3)
                since = None
            self.stop.wait(self.interval)

    def start(self):
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=10)


def wait_serving(cluster, m, timeout=30):
    """Waits (bounded) until `m` answers and names a leader; returns the seconds it took."""
    start = time.time()
    while time.time() - start < timeout:
        st = m.status()
        if st and st.get("leader"):
            return time.time() - start
        time.sleep(0.1)
    raise RuntimeError("member %s does not serve %ss after its restart" % (m.name, timeout))


def post_restart_check(cluster, m, label, puts, reads):
    """Writes through the restarted member and reads the write back through it."""
    serve_s = wait_serving(cluster, m)
    key, value = "soak/post-restart/%s" % label, "after-%s" % label
    r = cluster.etcdctl("put", key, value, endpoints=m.endpoint, check=False)
    puts.append({"restart": label, "member": m.name, "key": key, "ok": r.returncode == 0,
                 "error": r.stderr.strip()[-300:], "seconds_to_serve": round(serve_s, 3)})
    got = cluster.etcdctl("get", key, "-w", "json", endpoints=m.endpoint, check=False)
    value_read = None
    if got.returncode == 0:
        kv = probes.parse_get_json(got.stdout).get(key)
        value_read = kv[0].decode() if kv else None
    reads.append({"restart": label, "member": m.name, "key": key,
                  "ok": got.returncode == 0 and value_read == value, "value": value_read})
    return r.returncode == 0, value


def agreed(members):
    """True when every member reported a HashKV and all (hash, revision) pairs are equal."""
    return (bool(members) and all(members.values()) and
            len({(v["hash"], v["revision"]) for v in members.values()}) == 1)


def converge(cluster, timeout=60):
    """Waits (bounded) until every member reports the same revision; returns {name: (hash,
    revision)} from HashKV, or what it saw when the time ran out."""
    deadline = time.time() + timeout
    hashes = {}
    while time.time() < deadline:
        r = cluster.etcdctl("endpoint", "hashkv", "-w", "json", check=False)
        try:
            hashes = probes.parse_hashkv(r.stdout)
        except ValueError:
            hashes = {}
        if len(hashes) == len(cluster.members) and len(set(hashes.values())) == 1:
            break
        time.sleep(0.2)
    by_name = {}
    for m in cluster.members:
        h = hashes.get(m.endpoint)
        by_name[m.name] = {"hash": h[0], "revision": h[1]} if h else None
    return by_name


def run(work_dir, duration, rounds, fault, seed, stamp, tls=False):
    """Runs the lane; returns its result (also written to result.json). `tls`: the cluster with
    mutual TLS on client and peer ports (certificates made under the evidence)."""
    evidence = os.path.join(work_dir, "rollout-soak", stamp)
    os.makedirs(evidence)
    client_tls, peer_tls = make_tls(os.path.join(evidence, "pki")) if tls else (None, None)
    extra = ["--testing-power-loss-fs", "--heartbeat-interval", "50", "--election-timeout", "500"]
    if fault == "lying-sync":
        extra.append("--testing-lying-wal-sync")
    cluster = Cluster(names=["s1", "s2", "s3"], root=os.path.join(evidence, "cluster"),
                      token="soak-" + stamp, extra=extra, timing=(), client_tls=client_tls,
                      peer_tls=peer_tls)
    result = {"lane": "rollout-soak", "evidence": evidence, "fault": fault, "seed": seed,
              "tls": tls, "pass": False}
    puts, reads, log = [], [], []
    traffic = monitor = None
    rnd = random.Random(seed)
    try:
        if etcd3 is None:
            raise RuntimeError("python3-etcd3 is required for the traffic")
        start = time.time()
        cluster.start()
        if tls:
            result["plaintext_refused"] = cluster.plaintext_refused()
            if not result["plaintext_refused"]:
                raise RuntimeError("a member of the TLS cluster served a plaintext client")
        traffic, monitor = Traffic(cluster), LeaderMonitor(cluster)
        traffic.start()
        monitor.start()
        restarts = {"graceful": 0, "power_loss": 0, "whole_cluster_power_loss": 0}
        time.sleep(min(2.0, duration / 10))
        for m in cluster.members:  # rolling restart, each member in turn
            code = m.kill(signal.SIGTERM)
            log.append({"round": "graceful", "member": m.name, "exit_code": code})
            m.start()
            restarts["graceful"] += 1
            post_restart_check(cluster, m, "graceful-%s" % m.name, puts, reads)
        for r in range(rounds):  # power loss of one member, the leader every other round
            victim = cluster.leader_member() if r % 2 == 0 else rnd.choice(cluster.members)
            victim.kill(signal.SIGKILL)
            log.append({"round": "power-loss-%d" % r, "member": victim.name})
            victim.start()
            restarts["power_loss"] += 1
            post_restart_check(cluster, victim, "power-loss-%d-%s" % (r, victim.name), puts,
                               reads)
        # Power loss of the whole cluster at once: only fsync stands between acknowledged
        # writes and their loss now.
        for m in cluster.members:
            m.kill(signal.SIGKILL)
        log.append({"round": "whole-cluster-power-loss"})
        for m in cluster.members:
            m.start()
        restarts["whole_cluster_power_loss"] += 1
        for m in cluster.members:
            post_restart_check(cluster, m, "whole-cluster-%s" % m.name, puts, reads)
        while time.time() - start < duration:
            time.sleep(0.2)
        traffic.finish()
        monitor.finish()

        # Every acknowledged write must read back unchanged (one linearizable range read).
        got = probes.parse_get_json(cluster.etcdctl("get", "soak/", "--prefix", "-w", "json",
                                                    timeout=60, command_timeout="30s").stdout)
        lost = sorted(k for k, v in traffic.acked.items()
                      if k not in got or got[k][0].decode() != v)
        lost += sorted(p["key"] for p in puts if p["ok"] and p["key"] not in got)
        members = converge(cluster)
        converged = agreed(members)
        summary = {
            "restarts": sum(restarts.values()), "restarts_by_kind": restarts,
            "acknowledged_writes": len(traffic.acked), "unknown_writes": len(traffic.unknown),
            "writes_lost": len(lost), "lost_examples": lost[:20],
            "reads": traffic.reads, "stale_reads": len(traffic.stale_reads),
            "longest_leaderless_seconds": round(monitor.longest, 3),
            "leaderless_windows": monitor.windows, "leader_polls": monitor.polls,
            "members": members, "converged": converged,
            "client_errors_by_type": dict(traffic.errors),
            "post_restart_writes_ok": all(p["ok"] for p in puts),
            "post_restart_reads_ok": all(r["ok"] for r in reads),
            "rounds": log, "duration_seconds": round(time.time() - start, 1),
        }
        summary["pass"] = (not lost and converged and not traffic.stale_reads and
                           summary["post_restart_writes_ok"] and summary["post_restart_reads_ok"])
        probes.write_json(os.path.join(evidence, "post-control-plane-restarts.json"), summary)
        result.update(summary)
    except Exception as e:  # noqa: BLE001 - every failure ends up in result.json
        result["error"] = str(e)
    finally:
        if traffic:
            traffic.finish()
        if monitor:
            monitor.finish()
        cluster.stop()
        probes.write_json(os.path.join(evidence, "chainfire-post-restart-put.json"), puts)
        probes.write_json(os.path.join(evidence, "chainfire-post-restart.json"), reads)
    probes.write_json(os.path.join(evidence, "result.json"), result)
    return result
