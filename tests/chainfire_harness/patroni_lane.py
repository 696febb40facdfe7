"""The Patroni scenario on a ChainFire cluster, shared by tests/cluster/test_patroni.py and
the `cluster patroni` lane: two Patroni nodes bootstrap PostgreSQL 15 (a primary and a streaming
replica), a row written on the primary is read on the replica, the leader key carries the
leader's lease; a SIGTERM of the primary's Patroni fails over within seconds and the old
primary rejoins as a replica; a ChainFire leader kill costs no failover; a kill -9 of Patroni
and postmaster fails over after the lease expires (a gateway watch sees the leader key's
DELETE) and the crashed primary rejoins (pg_rewind). With auth, Patroni signs in as a user
confined to its namespace, and a write outside it is refused."""
import base64
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import traceback

from chainfire_harness import gateway as gw
from chainfire_harness import patroni, probes
from chainfire_harness.cluster import Cluster


SCOPE = "pgcf"
LEADER_KEY = "/service/%s/leader" % SCOPE


def b64(s):
    return base64.b64encode(s.encode()).decode()


def unb64(s):
    return base64.b64decode(s).decode()


class Watcher:
    """A gateway watch on Patroni's namespace (as Patroni's own), collecting events."""

    def __init__(self, endpoint):
        self.events = []
        self.g = gw.Gateway(endpoint, timeout=600)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.stopped = False
        self.thread.start()

    def run(self):
        import http.client
        body = json.dumps({"create_request": {"key": b64("/service/"),
                                               "range_end": b64("/service0")}})
        self.conn = http.client.HTTPConnection(self.g.host, self.g.port, timeout=600)
        try:
            self.conn.request("POST", "/v3/watch", body=body)
            resp = self.conn.getresponse()
            while not self.stopped:
                line = resp.readline()
                if not line:
                    return
                for obj in gw.parse_stream(line):
                    for e in obj.get("result", {}).get("events", []):
                        self.events.append((e.get("type", "PUT"), unb64(e["kv"]["key"])))
        except Exception:  # noqa: BLE001 - the stream ends when the test closes it
            return

    def deletes_of(self, key):
        return [e for e in self.events if e == ("DELETE", key)]

    def close(self):
        self.stopped = True
        try:
            self.conn.sock.shutdown(2)
        except Exception:  # noqa: BLE001
            pass
        self.thread.join(timeout=10)


def leader_key(g):
    """(value, lease) of Patroni's leader key, or (None, None)."""
    answer = g.call("kv/range", {"key": b64(LEADER_KEY)})
    if not answer.get("kvs"):
        return None, None
    kv = answer["kvs"][0]
    return unb64(kv["value"]), kv.get("lease")


def run_scenario(c, root, username=None, password=None, full=True):
    """Runs the scenario (module docstring) on the started ChainFire cluster `c`, Patroni's
    nodes under `root`; `full=False` stops after bootstrap, replication and the leader key.
    Raises (AssertionError or HarnessError) at the first failed step; returns timings."""
    hosts = ",".join("127.0.0.1:%d" % m.client_port for m in c.members)
    nodes = [patroni.PatroniNode(root, SCOPE, "pg%d" % i, hosts, username=username,
                                 password=password) for i in (1, 2)]
    g = gw.Gateway(c.members[0].endpoint)
    if username:
        g.token = g.call("auth/authenticate", {"name": "root", "password": "rootpw"})["token"]
    watcher = Watcher(c.members[1].endpoint) if not username else None
    try:
        # Bootstrap: the first node initializes the cluster, the second clones it.
        nodes[0].start()
        first = patroni.wait_for("pg1 primary", lambda: patroni.leader_of(nodes), 90, nodes)
        assert first is nodes[0]
        nodes[1].start()
        patroni.wait_for("pg2 streaming replica", lambda: nodes[1].role() == "replica" and (
            nodes[0].api() or {}).get("replication"), 90, nodes)
        listed = nodes[0].patronictl_list()
        assert listed["pg1"]["role"] == "Leader" and listed["pg2"]["role"] == "Replica", listed
        # Replication works: a row written on the primary is read on the replica.
        nodes[0].psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('on chainfire')")
        patroni.wait_for("row on the replica", lambda: _select(nodes[1]) == "on chainfire", 30,
                         nodes)
        # The leader key names the primary and carries a lease that Patroni keeps alive.
        value, lease = leader_key(g)
        assert value == "pg1" and lease and lease != "0", (value, lease)
        ttl = g.call("lease/timetolive", {"ID": lease})
        assert 0 < int(ttl["TTL"]) <= int(ttl["grantedTTL"]), ttl
        if username:
            # Patroni's user may not write outside its namespace: refused, as with etcdctl.
            token = g.call("auth/authenticate", {"name": username, "password": password})["token"]
            status, answer = gw.Gateway(c.members[0].endpoint, token=token).post(
                "kv/put", {"key": b64("/elsewhere"), "value": b64("x")})
            assert status == 403 and answer["message"] == "etcdserver: permission denied"
            status, _ = gw.Gateway(c.members[0].endpoint, token=token).post(
                "kv/put", {"key": b64("/service/%s/extra" % SCOPE), "value": b64("x")})
            assert status == 200
        if not full:
            return

        # 1. SIGTERM of the primary's Patroni: it releases the leader key; pg2 takes over fast.
        started = time.time()
        nodes[0].stop(signal.SIGTERM)
        patroni.wait_for("pg2 promoted", lambda: patroni.leader_of(nodes) is nodes[1], 30,
                         nodes)
        graceful_s = time.time() - started
        assert graceful_s < 20, graceful_s
        assert leader_key(g)[0] == "pg2"
        # The old primary rejoins as a replica of the new one.
        nodes[0].start()
        patroni.wait_for("pg1 back as replica", lambda: nodes[0].role() == "replica", 90, nodes)
        nodes[1].psql("INSERT INTO t VALUES ('after switchover')")
        patroni.wait_for("pg1 replicates pg2",
                         lambda: "after switchover" in _select(nodes[0], all_rows=True), 30, nodes)

        # 2. A ChainFire leader kill (and restart) costs Patroni no failover.
        primary_before = patroni.leader_of(nodes)
        cf_leader = c.leader_member()
        cf_leader.kill(signal.SIGKILL)
        c.wait_for_leader(members=[m for m in c.members if m is not cf_leader], timeout=20)
        deadline = time.time() + 12  # over the Patroni TTL (10 s)
        while time.time() < deadline:
            assert patroni.leader_of(nodes) in (primary_before, None)
            time.sleep(0.5)
        assert patroni.leader_of(nodes) is primary_before
        assert leader_key(g if cf_leader is not c.members[0] else
                          gw.Gateway(c.members[1].endpoint, token=g.token))[0] == \
            primary_before.name
        cf_leader.start()
        c.wait_for_leader(timeout=20)

        # 3. kill -9 of Patroni and postmaster on the primary: the lease expires (a DELETE of
        # the leader key), and the replica is promoted after the TTL.
        victim, survivor = nodes[1], nodes[0]
        started = time.time()
        victim.kill_hard()
        patroni.wait_for("pg1 promoted after the TTL",
                         lambda: patroni.leader_of(nodes) is survivor, 60, nodes)
        crash_s = time.time() - started
        if watcher:
            patroni.wait_for("DELETE of the leader key seen by a watch",
                             lambda: watcher.deletes_of(LEADER_KEY), 10)
        # The crashed primary comes back as a replica (pg_rewind of its diverged timeline).
        victim.start()
        patroni.wait_for("pg2 back as replica", lambda: victim.role() == "replica", 120, nodes)
        survivor.psql("INSERT INTO t VALUES ('after crash')")
        patroni.wait_for("pg2 replicates pg1",
                         lambda: "after crash" in _select(victim, all_rows=True), 30, nodes)
        listed = survivor.patronictl_list()
        assert listed["pg1"]["role"] == "Leader" and listed["pg2"]["role"] == "Replica", listed
        return {"graceful_failover_s": round(graceful_s, 1), "crash_failover_s": round(crash_s, 1)}
    finally:
        if watcher:
            watcher.close()
        for n in nodes:
            n.cleanup()


def _select(node, all_rows=False):
    try:
        rows = node.psql("SELECT v FROM t ORDER BY v")
    except Exception:  # noqa: BLE001 - not up yet
        return ""
    return rows if all_rows else rows.split("\n")[0]



def enable_auth(g):
    """Root, and a `patroni` user whose role has READWRITE on /service/ only; auth on."""
    g.call("auth/user/add", {"name": "root", "password": "rootpw"})
    g.call("auth/user/grant", {"user": "root", "role": "root"})
    g.call("auth/role/add", {"name": "patroni"})
    g.call("auth/role/grant", {"name": "patroni", "perm": {
        "permType": "READWRITE", "key": b64("/service/"), "range_end": b64("/service0")}})
    g.call("auth/user/add", {"name": "patroni", "password": "patroni-pw"})
    g.call("auth/user/grant", {"user": "patroni", "role": "patroni"})
    g.call("auth/enable", {})


def run(work_dir, stamp):
    """The lane: the full scenario, then bootstrap with auth, each on a fresh 3-member cluster
    with etcd's default timing; evidence (summary.json, member and Patroni logs) under
    work/patroni/<stamp>/."""
    evidence = os.path.join(work_dir, "patroni", stamp)
    os.makedirs(evidence)
    result = {"lane": "patroni", "evidence": evidence, "pass": False, "runs": {}}
    why = patroni.available()
    if why:
        result["error"] = why
        probes.write_json(os.path.join(evidence, "summary.json"), result)
        return result
    for name, auth in (("failover", False), ("auth", True)):
        root = os.path.join(evidence, name)
        os.makedirs(root)
        # PostgreSQL runs as the postgres user, which may not reach the work dir (a clone
        # under /root): its nodes live in a directory of their own; the logs are copied back.
        pg_root = tempfile.mkdtemp(prefix="chainfire-patroni-")
        os.chmod(pg_root, 0o755)
        run_result = {"pass": False}
        cluster = Cluster(names=["p1", "p2", "p3"], root=os.path.join(root, "chainfire"),
                          token="patroni-" + stamp, timing=())
        try:
            cluster.start()
            if auth:
                enable_auth(gw.Gateway(cluster.members[0].endpoint))
                run_result.update(run_scenario(cluster, pg_root, username="patroni",
                                               password="patroni-pw", full=False) or {})
            else:
                run_result.update(run_scenario(cluster, pg_root) or {})
            run_result["pass"] = True
        except Exception as e:  # noqa: BLE001 - recorded as the lane's verdict
            run_result["error"] = "".join(traceback.format_exception_only(type(e), e))[-4000:]
        finally:
            cluster.stop(signal.SIGKILL)
            for node in ("pg1", "pg2"):
                log = os.path.join(pg_root, node, "patroni.log")
                if os.path.exists(log):
                    os.makedirs(os.path.join(root, node), exist_ok=True)
                    shutil.copy(log, os.path.join(root, node, "patroni.log"))
            shutil.rmtree(pg_root, ignore_errors=True)
        result["runs"][name] = run_result
    result["pass"] = all(r["pass"] for r in result["runs"].values())
    probes.write_json(os.path.join(evidence, "summary.json"), result)
    return result
