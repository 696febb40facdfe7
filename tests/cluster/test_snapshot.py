"""Raft snapshots in the daemon: the log is truncated every --snapshot-count entries, and a
follower that fell behind the truncation point catches up by a streamed snapshot."""
import json
import threading

from chainfire_harness import cluster as harness

SNAPSHOT_FLAGS = ["--snapshot-count", "50", "--experimental-snapshot-catchup-entries", "10"]


def hashkv(c, members):
    r = c.etcdctl("endpoint", "hashkv", "-w", "json",
                  endpoints=",".join(m.endpoint for m in members))
    return {x["Endpoint"]: (x["HashKV"]["hash"], x["HashKV"]["header"]["revision"])
            for x in json.loads(r.stdout)}


def wait_for_revision(c, members, revision, timeout=30):
    deadline = harness.time.time() + timeout
    while harness.time.time() < deadline:
        st = c.statuses(members)
        if len(st) == len(members) and all(s["header"]["revision"] >= revision
                                            for s in st.values()):
            return
        harness.time.sleep(0.1)
    raise AssertionError("members did not reach revision %d: %s" % (revision, c.statuses()))


def test_lagging_follower_catches_up_by_snapshot_with_equal_hashkv():
    with harness.Cluster(3, extra=SNAPSHOT_FLAGS) as c:
        leader = c.leader_member()
        follower = next(m for m in c.members if m is not leader)
        follower.kill(harness.signal.SIGTERM)
        others = [m for m in c.members if m is not follower]
        eps = ",".join(m.endpoint for m in others)
        # Several snapshot points pass while the follower is down, with history, deletes,
        # a compaction and a lease.
        lease = c.etcdctl("lease", "grant", "600", endpoints=eps).stdout.split()[1]
        c.etcdctl("put", "leased", "x", "--lease=" + lease, endpoints=eps)
        for i in range(300):
            c.etcdctl("put", "k/%03d" % (i % 120), "v%d" % i, endpoints=eps)
        c.etcdctl("del", "k/007", endpoints=eps)
        c.etcdctl("compact", "100", endpoints=eps)
        revision = c.statuses(others)[others[0].endpoint]["header"]["revision"]

        follower.start(extra=SNAPSHOT_FLAGS)
        wait_for_revision(c, c.members, revision)
        hashes = hashkv(c, c.members)
        assert len({h for h, _ in hashes.values()}) == 1, hashes
        assert "installed the snapshot" in follower.log()
        # The restored follower serves what the leader has, old revisions included.
        got = c.etcdctl("get", "k/", "--prefix", "-w", "json", "--consistency=s",
                        endpoints=follower.endpoint).stdout
        want = c.etcdctl("get", "k/", "--prefix", "-w", "json", endpoints=leader.endpoint).stdout
        assert harness.parse_get_json(got) == harness.parse_get_json(want)
        r = c.etcdctl("get", "k/001", "--rev=150", "--consistency=s", "-w", "json",
                      endpoints=follower.endpoint)
        assert harness.parse_get_json(r.stdout)
        ttl = c.etcdctl("lease", "timetolive", lease, "--keys", endpoints=follower.endpoint)
        assert "leased" in ttl.stdout
        # It is a full member again: it can lead and restarts without a snapshot redo.
        c.etcdctl("move-leader", "%x" % follower_id(c, follower), endpoints=leader.endpoint)
        c.etcdctl("put", "after", "snapshot")
        follower.kill(harness.signal.SIGTERM)
        follower.start(extra=SNAPSHOT_FLAGS)
        c.wait_for_leader()
        final = c.statuses()[leader.endpoint]["header"]["revision"]
        wait_for_revision(c, c.members, final)
        assert len({h for h, _ in hashkv(c, c.members).values()}) == 1


def follower_id(c, member):
    return c.statuses([member])[member.endpoint]["header"]["member_id"]


def test_writes_during_catch_up_are_not_lost():
    with harness.Cluster(3, extra=SNAPSHOT_FLAGS) as c:
        leader = c.leader_member()
        follower = next(m for m in c.members if m is not leader)
        follower.kill(harness.signal.SIGKILL)
        eps = ",".join(m.endpoint for m in c.members if m is not follower)
        for i in range(200):
            c.etcdctl("put", "pre/%03d" % i, "v", endpoints=eps)
        acked, stop = [], threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                i += 1
                if c.etcdctl("put", "during/%04d" % i, "v", check=False,
                             endpoints=eps).returncode == 0:
                    acked.append("during/%04d" % i)

        t = threading.Thread(target=writer)
        t.start()
        try:
            follower.start(extra=SNAPSHOT_FLAGS)
            c.wait_for_leader()
            deadline = harness.time.time() + 30
            while len(acked) < 100 and harness.time.time() < deadline:
                harness.time.sleep(0.05)
        finally:
            stop.set()
            t.join(timeout=60)
        revision = c.statuses()[leader.endpoint]["header"]["revision"]
        wait_for_revision(c, c.members, revision)
        got = harness.parse_get_json(c.etcdctl("get", "during/", "--prefix", "-w", "json",
                                               "--consistency=s",
                                               endpoints=follower.endpoint).stdout)
        assert set(acked) <= set(got)
        assert len({h for h, _ in hashkv(c, c.members).values()}) == 1
