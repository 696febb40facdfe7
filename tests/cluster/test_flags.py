"""The daemon's flags: environment variables, bad flags, advertised URLs that differ from the
listen URLs."""
import json
import os
import subprocess

from chainfire_harness import cluster as harness
from chainfire_harness import probes


def run(args, env=None, timeout=20):
    return subprocess.run([harness.CHAINFIRE] + args, capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_help_documents_every_flag_and_version_is_separate():
    r = run(["--help"])
    assert r.returncode == 0
    for flag in ["--name", "--data-dir", "--listen-client-urls", "--advertise-client-urls",
                 "--listen-peer-urls", "--initial-advertise-peer-urls", "--initial-cluster",
                 "--initial-cluster-token", "--initial-cluster-state", "--heartbeat-interval",
                 "--election-timeout", "--max-request-bytes", "--log-level"]:
        assert flag in r.stdout, flag
    v = run(["--version"])
    assert v.returncode == 0 and "chainfire" in v.stdout


def test_bad_flags_fail_at_start_naming_the_flag():
    r = run(["--heartbeat-interval", "abc"])
    assert r.returncode != 0 and "--heartbeat-interval" in r.stdout + r.stderr
    r = run(["--no-such-flag"])
    assert r.returncode != 0 and "--no-such-flag" in r.stdout + r.stderr
    r = run(["--listen-client-urls", "https://127.0.0.1:1"])
    assert r.returncode != 0 and "--cert-file and --key-file are required" in r.stderr
    r = run(["--listen-peer-urls", "https://127.0.0.1:1"])
    assert r.returncode != 0 and "peer URLs mix http:// and https://" in r.stderr
    r = run(["--listen-peer-urls", "https://127.0.0.1:1", "--initial-advertise-peer-urls",
             "https://127.0.0.1:1"])
    assert r.returncode != 0 and "need --peer-cert-file" in r.stderr
    r = run(["--initial-cluster-state", "sideways"])
    assert r.returncode != 0 and "--initial-cluster-state" in r.stdout + r.stderr
    r = run(["--election-timeout", "100", "--heartbeat-interval", "100"])
    assert r.returncode != 0 and "--election-timeout" in r.stderr
    r = run(["--name", "x", "--initial-cluster", "y=http://127.0.0.1:1"])
    assert r.returncode != 0 and "does not appear in --initial-cluster" in r.stderr


def test_flags_from_environment_and_advertised_urls():
    c = harness.Cluster(1)
    m = c.members[0]
    try:
        # Listen on 127.0.0.1, advertise "localhost": peers dial the advertised peer URL.
        peer_adv = "http://localhost:%d" % m.peer_port
        env = dict(os.environ,
                   CHAINFIRE_NAME="solo",
                   CHAINFIRE_DATA_DIR=m.data_dir,
                   CHAINFIRE_LISTEN_CLIENT_URLS="http://127.0.0.1:%d" % m.client_port,
                   CHAINFIRE_ADVERTISE_CLIENT_URLS="http://localhost:%d" % m.client_port,
                   CHAINFIRE_LISTEN_PEER_URLS="http://127.0.0.1:%d" % m.peer_port,
                   CHAINFIRE_INITIAL_ADVERTISE_PEER_URLS=peer_adv,
                   CHAINFIRE_INITIAL_CLUSTER="solo=" + peer_adv)
        log = open(m.log_path, "a")
        m.proc = subprocess.Popen([harness.CHAINFIRE], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
        log.close()
        c.wait_for_leader()
        m.name = "solo"
        c.wait_for_published()
        members = harness.parse_member_list(c.etcdctl("member", "list", "-w", "json").stdout)
        assert members[0][1] == "solo"
        assert members[0][2] == [peer_adv]
        assert members[0][3] == ["http://localhost:%d" % m.client_port]
    finally:
        c.__exit__(None, None, None)


def _wait_compacted(c, rev, timeout=20):
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = c.etcdctl("get", "ac", "--rev=%d" % rev, check=False)
        if r.returncode != 0 and "required revision has been compacted" in r.stderr:
            return True
        time.sleep(0.2)
    return False


def test_cpu_scheduling_auto_by_default_normal_and_batch_on_request_bad_values_refused():
    def policies_with(extra):
        c = harness.Cluster(1)
        try:
            c.members[0].start(extra=extra)
            c.wait_for_leader()
            c.etcdctl("put", "k", "v")
            return probes.thread_policies(c.members[0].proc.pid)
        finally:
            c.__exit__(None, None, None)

    # Default (auto): gRPC's pollers and RocksDB's threads SCHED_BATCH, every thread ChainFire
    # starts (cf-*) the kernel's default.
    policies = policies_with([])
    own = {name: ps for name, ps in policies.items() if name.startswith("cf-")}
    assert {"cf-node", "cf-wal", "cf-link-accept"} <= set(own), policies
    assert {p for ps in own.values() for p in ps} == {"normal"}, policies
    assert set(policies.get("nexting_thread", [])) == {"batch"}, policies
    # --cpu-scheduling normal: the kernel's default on every thread.
    policies = policies_with(["--cpu-scheduling", "normal"])
    assert {p for ps in policies.values() for p in ps} == {"normal"}, policies
    # --cpu-scheduling batch: every thread of the running member (gRPC's, RocksDB's and ours).
    policies = policies_with(["--cpu-scheduling", "batch"])
    assert {p for ps in policies.values() for p in ps} == {"batch"}, policies
    assert "cf-node" in policies and "cf-wal" in policies
    r = run(["--cpu-scheduling", "fifo"])
    assert r.returncode != 0 and "--cpu-scheduling" in r.stdout + r.stderr


def test_one_grpc_callback_thread_by_default_all_of_them_on_request_bad_values_refused():
    def busy_callback_threads(extra):
        """How many of gRPC's callback threads ran during a load of gets, of how many."""
        c = harness.Cluster(1)
        try:
            c.members[0].start(extra=extra)
            c.wait_for_leader()
            pid = c.members[0].proc.pid
            before = probes.thread_cpu_ticks(pid, "nexting_thread")
            load = probes.tool("chainfire-bench", "--endpoints", c.members[0].endpoint, "--op",
                               "get", "--clients", "16", "--conns", "2", "--seconds", "2",
                               "--keys", "100", timeout=60)
            assert json.loads(load.stdout)["errors"] == 0, load.stdout
            after = probes.thread_cpu_ticks(pid, "nexting_thread")
            return sum(after[t] > ticks for t, ticks in before.items()), len(before)
        finally:
            c.__exit__(None, None, None)

    # Default: the others are held, one thread polls and runs every call.
    busy, pool = busy_callback_threads([])
    assert pool >= 2 and busy == 1, (busy, pool)
    # 0: gRPC's whole pool takes turns.
    busy, pool = busy_callback_threads(["--grpc-callback-threads", "0"])
    assert busy == pool >= 2, (busy, pool)
    r = run(["--grpc-callback-threads", "-1"])
    assert r.returncode != 0 and "--grpc-callback-threads" in r.stdout + r.stderr


def test_auto_compaction_by_revision_and_period():
    for extra in (["--auto-compaction-mode", "revision", "--auto-compaction-retention", "5"],
                  ["--auto-compaction-mode", "periodic", "--auto-compaction-retention", "2s"]):
        c = harness.Cluster(1)
        try:
            c.members[0].start(extra=extra)
            c.wait_for_leader()
            for i in range(20):
                c.etcdctl("put", "ac", str(i))
            assert _wait_compacted(c, 3), "no auto-compaction with %s" % extra
            assert c.etcdctl("get", "ac", "--print-value-only").stdout.strip() == "19"
        finally:
            c.__exit__(None, None, None)
    # Off by default: history stays.
    with harness.Cluster(1) as c:
        for i in range(20):
            c.etcdctl("put", "ac", str(i))
        import time
        time.sleep(2.5)
        assert c.etcdctl("get", "ac", "--rev=3", "--print-value-only").stdout.strip() == "1"


def test_quota_raises_nospace_and_space_can_be_freed(clients):
    import time
    c = harness.Cluster(1)
    try:
        c.members[0].start(extra=["--quota-backend-bytes", "1000000"])
        c.wait_for_leader()
        client = clients(c.members[0].client_port)
        value = "x" * 300000
        error = None
        for i in range(20):
            try:
                client.put("big%d" % i, value)
            except Exception as e:  # the NOSPACE error
                error = str(e)
                break
        assert error and "database space exceeded" in error
        alarms = c.etcdctl("alarm", "list").stdout
        assert "NOSPACE" in alarms
        # Writes that add data fail; reads, deletes, compaction and defrag still work.
        r = c.etcdctl("put", "more", "x", check=False)
        assert r.returncode != 0 and "database space exceeded" in r.stderr
        r = c.etcdctl("lease", "grant", "10", check=False)
        assert r.returncode != 0 and "database space exceeded" in r.stderr
        assert c.etcdctl("get", "big0", "--keys-only").stdout.strip() == "big0"
        c.etcdctl("del", "big", "--prefix")
        rev = json.loads(c.etcdctl("get", "x", "-w", "json").stdout)["header"]["revision"]
        c.etcdctl("compaction", str(rev), "--physical")
        c.etcdctl("defrag")
        status = c.statuses()
        assert any("NOSPACE" in " ".join(s.get("errors", [])) for s in status.values())
        c.etcdctl("alarm", "disarm")
        assert "NOSPACE" not in c.etcdctl("alarm", "list").stdout
        # The quota samples the data dir size at most every 500 ms: a write may still be refused
        # until the next sample sees the freed space.
        deadline = time.time() + 10
        while c.etcdctl("put", "after", "ok", check=False).returncode != 0:
            assert time.time() < deadline, "writes still refused after the alarm was disarmed"
            time.sleep(0.1)
        assert c.etcdctl("get", "after", "--print-value-only").stdout.strip() == "ok"
    finally:
        c.__exit__(None, None, None)
