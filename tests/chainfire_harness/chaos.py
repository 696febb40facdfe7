"""The chaos lane: a register workload against a real 3-member cluster while a nemesis injects
faults one at a time, then a linearizability check of the recorded history.

Clients put unique values, read linearizably and compare-and-swap (Txn) on a few keys, each
operation recorded with its call and return time and an outcome: ok, fail (it certainly had no
effect: a read that failed, or a request that never left the client) or unknown (a write whose
fate the client cannot know: it is checked as possibly applied at any time after its call).

Faults (each healed before the next): SIGKILL of a random member or of the leader, SIGSTOP of
the leader then SIGCONT, a whole-cluster power loss (every member runs on the test-only
power-loss file system, so every kill also loses what was not fsynced), and network partitions:
one member isolated, the leader isolated, and a one-way cut (the leader cannot reach one
follower, which still reaches it). Partitions use per-link proxies: member X dials member Y
through a proxy of its own for the link X->Y (the test-only --testing-peer-dial flag), so each
direction of each pair can be cut alone.

Verdicts: the history is linearizable (chainfire-lincheck, the simulation's checker); every
acknowledged write is in the store at the revision it was acknowledged with; every member ends
at the same revision and HashKV. Any violation makes the lane fail.
"""
import asyncio
import json
import collections
import os
import random
import signal
import subprocess
import threading
import time

from chainfire_harness import probes
from chainfire_harness.cluster import Cluster
from chainfire_harness import rollout_soak

try:
    import grpc
    from etcd3 import etcdrpc  # python3-etcd3's generated etcd v3 stubs
except ImportError:  # the lane reports it; the pure helpers below still import
    grpc = None
    etcdrpc = None

FAULT_KINDS = ("kill", "kill-leader", "pause-leader", "power-loss-all", "isolate-member",
               "isolate-leader", "one-way")
KEYS = ["chaos/r%d" % i for i in range(4)]


# ---- pure helpers (tested on their own in tests/cluster/test_chaos.py) ----------------------

def op_outcome(is_write, code_name, details):
    """The outcome of an operation that raised a gRPC error: "fail" when it certainly had no
    effect, else "unknown". A read never has an effect. A write that never left the client
    (no connection to any address) cannot have one either; any other write error (timeout,
    leader change, a connection cut mid-call) may hide a write that was applied."""
    if not is_write:
        return "fail"
    d = (details or "").lower()
    if code_name == "UNAVAILABLE" and ("failed to connect to all addresses" in d or
                                       "connection refused" in d):
        return "fail"
    return "unknown"


def schedule(seed, seconds, kinds=FAULT_KINDS):
    """The nemesis plan for a run: [(kind, victim index, fault seconds, quiet seconds)],
    a pure function of the seed, long enough to fill `seconds`."""
    rnd = random.Random(seed)
    plan, t = [], 0.0
    while t < seconds:
        kind = rnd.choice(list(kinds))
        hold = round(rnd.uniform(1.5, 3.5), 2)
        quiet = round(rnd.uniform(1.0, 2.0), 2)
        plan.append((kind, rnd.randrange(3), hold, quiet))
        t += hold + quiet + 2.0  # about what healing and a new leader take
    return plan


def partition_links(kind, names, victim, leader):
    """The directed links (from, to) to cut for a partition fault, or [] for other faults."""
    if kind == "isolate-member":
        target = victim
    elif kind == "isolate-leader":
        target = leader
    elif kind == "one-way":
        others = [n for n in names if n != leader]
        return [(leader, others[names.index(victim) % len(others)])]
    else:
        return []
    return [(a, b) for a in names for b in names if a != b and target in (a, b)]


def lost_writes(acked, read_at_revision):
    """Acknowledged writes not found where they were acknowledged. `acked`: [(key, value,
    revision)]; `read_at_revision`: {(key, revision): (value, mod_revision) or None}."""
    lost = []
    for key, value, rev in acked:
        got = read_at_revision.get((key, rev))
        if got is None or got[0] != value or got[1] != rev:
            lost.append({"key": key, "value": value, "revision": rev, "found": got})
    return lost


def checked_history(ops):
    """The lines the checker reads (history_io.h): ok and unknown operations (a failed one had
    no effect), without the lane's own fields (member, outcome, error)."""
    out = []
    for op in ops:
        if op["outcome"] == "fail":
            continue
        unknown = op["outcome"] == "unknown"
        line = {k: op[k] for k in ("id", "client", "kind", "key", "call", "value", "expected")
                if k in op}
        line["unknown"] = unknown
        if not unknown:
            line.update({k: op[k] for k in ("ret", "output", "cas_ok") if k in op})
        out.append(line)
    return out


# ---- per-link proxies ----------------------------------------------------------------------

class LinkProxies:
    """One TCP proxy per directed link X->Y, listening on a port of its own and forwarding to
    Y's peer port. A cut link drops its open connections and closes new ones at once."""

    def __init__(self, links):
        self.links = links  # {(from, to): (listen port, target port)}
        self.cut = set()
        self.conns = collections.defaultdict(set)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers = []

    def start(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)

    async def _serve(self):
        for link, (port, target) in self.links.items():
            handler = (lambda l, t: lambda r, w: self._handle(l, t, r, w))(link, target)
            self.servers.append(await asyncio.start_server(handler, "127.0.0.1", port))

    async def _handle(self, link, target, reader, writer):
        if link in self.cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", target), 2)
        except (OSError, asyncio.TimeoutError):
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self.conns[link].add(pair)

        async def pipe(src, dst):
            try:
                while True:
                    data = await src.read(65536)
                    if not data:
                        break
                    dst.write(data)
                    await dst.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.conns[link].discard(pair)

    def set_cut(self, links):
        def apply():
            self.cut = set(links)
            for link in self.cut:
                for a, b in list(self.conns[link]):
                    a.transport.abort()
                    b.transport.abort()
        self.loop.call_soon_threadsafe(apply)

    def stop(self):
        def close():
            for s in self.servers:
                s.close()
            for conns in self.conns.values():
                for a, b in conns:
                    a.transport.abort()
                    b.transport.abort()
        self.loop.call_soon_threadsafe(close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def wire_proxies(cluster):
    """Gives each member a --testing-peer-dial flag naming its own proxy for every peer."""
    names = [m.name for m in cluster.members]
    ports = probes.free_ports(len(names) * (len(names) - 1))
    links = {}
    for src in cluster.members:
        dial = []
        for dst in cluster.members:
            if dst is src:
                continue
            port = ports.pop()
            links[(src.name, dst.name)] = (port, dst.peer_port)
            dial.append("%s=127.0.0.1:%d" % (dst.name, port))
        src.extra = ["--testing-peer-dial", ",".join(dial)]
    return LinkProxies(links)


# ---- the workload --------------------------------------------------------------------------

class Workload(probes.Workers):
    """Clients running register operations; each op is appended to `history` when it ends."""

    join_timeout = 10

    def __init__(self, cluster, clients, seed, serializable_reads=False, timeout=1.0):
        super().__init__()
        self.cluster = cluster
        self.serializable = serializable_reads
        self.timeout = timeout
        self.history = []
        self.acked = []  # (key, value, revision) of acknowledged writes
        self.errors = collections.Counter()
        self.lock = threading.Lock()
        self.next_id = 0
        opts = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000)]
        self.channels = [grpc.insecure_channel("127.0.0.1:%d" % m.client_port, options=opts)
                         for m in cluster.members]
        self.stubs = [etcdrpc.KVStub(ch) for ch in self.channels]
        self.threads = [threading.Thread(target=self._client, args=(i, seed * 1000 + i),
                                         daemon=True) for i in range(clients)]

    def _record(self, op):
        with self.lock:
            self.next_id += 1
            op["id"] = self.next_id
            self.history.append(op)

    def _client(self, n, seed):
        rnd = random.Random(seed)
        member, seq, seen = rnd.randrange(len(self.stubs)), 0, {}
        while not self.stop.is_set():
            if rnd.random() < 0.3:
                member = rnd.randrange(len(self.stubs))
            stub, key = self.stubs[member], rnd.choice(KEYS)
            r = rnd.random()
            seq += 1
            value = "c%d-%d" % (n, seq)
            if r < 0.4 or not seen.get(key):
                kind = "get" if r < 0.4 else "put"
            else:
                kind = "cas" if r < 0.7 else "put"
            op = {"client": n, "kind": kind, "key": key, "member": member,
                  "call": time.monotonic_ns()}
            if kind != "get":
                op["value"] = value
            if kind == "cas":
                op["expected"] = seen[key]
            try:
                if kind == "get":
                    resp = stub.Range(etcdrpc.RangeRequest(key=key.encode(),
                                                           serializable=self.serializable),
                                      timeout=self.timeout)
                    op["output"] = resp.kvs[0].value.decode() if resp.kvs else ""
                    if op["output"]:
                        seen[key] = op["output"]
                elif kind == "put":
                    resp = stub.Put(etcdrpc.PutRequest(key=key.encode(), value=value.encode()),
                                    timeout=self.timeout)
                    seen[key] = value
                else:
                    cmp = etcdrpc.Compare(key=key.encode(), result=etcdrpc.Compare.EQUAL,
                                          target=etcdrpc.Compare.VALUE,
                                          value=op["expected"].encode())
                    put = etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(
                        key=key.encode(), value=value.encode()))
                    resp = stub.Txn(etcdrpc.TxnRequest(compare=[cmp], success=[put]),
                                    timeout=self.timeout)
                    op["cas_ok"] = resp.succeeded
                    if resp.succeeded:
                        seen[key] = value
                op["ret"] = time.monotonic_ns()
                op["outcome"] = "ok"
                if kind == "put" or (kind == "cas" and op["cas_ok"]):
                    with self.lock:
                        self.acked.append((key, value, resp.header.revision))
            except grpc.RpcError as e:
                code = e.code().name if e.code() else "UNKNOWN"
                op["outcome"] = op_outcome(kind != "get", code, e.details())
                op["error"] = "%s: %s" % (code, (e.details() or "")[:200])
                with self.lock:
                    self.errors["%s %s" % (kind, code)] += 1
                op["unknown"] = op["outcome"] == "unknown"
                if not op["unknown"]:
                    op["ret"] = time.monotonic_ns()
                member = rnd.randrange(len(self.stubs))  # try another member next
                self.stop.wait(0.02)
            self._record(op)

    def finish(self):
        super().finish()
        for ch in self.channels:
            ch.close()


def read_back(cluster, acked):
    """Reads each acknowledged write at its revision from the first member."""
    ch = grpc.insecure_channel("127.0.0.1:%d" % cluster.members[0].client_port)
    stub = etcdrpc.KVStub(ch)
    found = {}
    try:
        for key, _, rev in acked:
            resp = stub.Range(etcdrpc.RangeRequest(key=key.encode(), revision=rev), timeout=10)
            found[(key, rev)] = ((resp.kvs[0].value.decode(), resp.kvs[0].mod_revision)
                                 if resp.kvs else None)
    finally:
        ch.close()
    return found


# ---- the nemesis ---------------------------------------------------------------------------

class Nemesis:
    def __init__(self, cluster, proxies):
        self.cluster, self.proxies = cluster, proxies
        self.names = [m.name for m in cluster.members]
        self.log = []

    def inject(self, kind, victim_index, hold, t0):
        c = self.cluster
        leader = c.leader_member()
        victim = c.members[victim_index]
        entry = {"kind": kind, "at": round(time.time() - t0, 2), "hold_seconds": hold,
                 "leader_before": leader.name}
        if kind in ("kill", "kill-leader"):
            target = leader if kind == "kill-leader" else victim
            target.kill(signal.SIGKILL)
            entry["member"] = target.name
            time.sleep(hold)
            target.start()
        elif kind == "pause-leader":
            entry["member"] = leader.name
            leader.proc.send_signal(signal.SIGSTOP)
            time.sleep(hold)
            leader.proc.send_signal(signal.SIGCONT)
        elif kind == "power-loss-all":
            for m in c.members:
                m.kill(signal.SIGKILL)
            time.sleep(min(hold, 1.0))
            for m in c.members:
                m.start()
        else:
            links = partition_links(kind, self.names, victim.name, leader.name)
            entry["cut_links"] = ["%s->%s" % l for l in links]
            self.proxies.set_cut(links)
            time.sleep(hold)
            self.proxies.set_cut([])
        entry["healed_at"] = round(time.time() - t0, 2)
        entry["leader_after"] = "%x" % c.wait_for_leader(timeout=30)
        entry["leader_back_at"] = round(time.time() - t0, 2)
        self.log.append(entry)


def run(work_dir, seconds, seed, kinds, unsafe, stamp, clients=4):
    evidence = os.path.join(work_dir, "chaos", stamp)
    os.makedirs(evidence)
    result = {"lane": "chaos", "evidence": evidence, "seed": seed, "seconds": seconds,
              "fault_kinds": list(kinds), "unsafe": unsafe, "pass": False}
    extra = ["--testing-power-loss-fs", "--heartbeat-interval", "50", "--election-timeout", "500"]
    cluster = Cluster(names=["c1", "c2", "c3"], root=os.path.join(evidence, "cluster"),
                      token="chaos-" + stamp, extra=extra, timing=())
    proxies = wire_proxies(cluster)
    workload = None
    nemesis = Nemesis(cluster, proxies)
    try:
        if grpc is None:
            raise RuntimeError("python3-etcd3 and python3-grpcio are required")
        proxies.start()
        cluster.start()
        workload = Workload(cluster, clients, seed, serializable_reads=(unsafe ==
                                                                      "serializable-reads"))
        t0 = time.time()
        workload.start()
        for kind, victim, hold, quiet in schedule(seed, seconds, kinds):
            if time.time() - t0 >= seconds:
                break
            nemesis.inject(kind, victim, hold, t0)
            time.sleep(quiet)
        workload.finish()
        for m in cluster.members:  # all members up at the end
            if m.proc is None or m.proc.poll() is not None:
                raise RuntimeError("member %s is not running at the end" % m.name)

        history = checked_history(workload.history)
        history_path = os.path.join(evidence, "history.jsonl")
        with open(history_path, "w") as f:
            for line in history:
                f.write(json.dumps(line, sort_keys=True) + "\n")
        with open(os.path.join(evidence, "operations.jsonl"), "w") as f:
            for op in workload.history:
                f.write(json.dumps(op, sort_keys=True) + "\n")
        check = subprocess.run([os.path.join(probes.BIN_DIR, "chainfire-lincheck"), history_path],
                               capture_output=True, text=True, timeout=600)
        try:
            verdict = json.loads(check.stdout)
        except ValueError:
            verdict = {"verdict": "checker-error", "stderr": check.stderr[-500:]}
        probes.write_json(os.path.join(evidence, "linearizability.json"), verdict)

        lost = lost_writes(workload.acked, read_back(cluster, workload.acked))
        members = rollout_soak.converge(cluster)
        outcomes = collections.Counter("%s %s" % (op["kind"], op["outcome"])
                                       for op in workload.history)
        summary = {
            "operations": len(workload.history),
            "operations_by_outcome": dict(outcomes),
            "client_errors": dict(workload.errors),
            "faults_injected": len(nemesis.log),
            "faults": nemesis.log,
            "linearizable": verdict.get("verdict") == "linearizable",
            "linearizability_verdict": verdict.get("verdict"),
            "violation_key": verdict.get("key"),
            "acknowledged_writes": len(workload.acked),
            "writes_lost": len(lost), "lost_examples": lost[:20],
            "members": members, "converged": rollout_soak.agreed(members),
            "history": history_path,
            "replay": "%s %s" % (os.path.join(probes.BIN_DIR, "chainfire-lincheck"),
                                 history_path),
            "duration_seconds": round(time.time() - t0, 1),
        }
        summary["pass"] = (summary["linearizable"] and not lost and summary["converged"])
        result.update(summary)
    except Exception as e:  # noqa: BLE001 - every failure ends up in result.json
        result["error"] = str(e)
    finally:
        if workload:
            workload.finish()
        for m in cluster.members:  # a paused member must not outlive the lane
            if m.proc is not None and m.proc.poll() is None:
                m.proc.send_signal(signal.SIGCONT)
        cluster.stop()
        proxies.stop()
    probes.write_json(os.path.join(evidence, "summary.json"), result)
    return result
