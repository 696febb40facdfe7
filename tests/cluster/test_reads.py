"""Long linearizable scans run off the node thread: while several scan the whole key space on
the leader, it keeps its leadership (its heartbeats go out on time) and writes go on."""
import json
import os
import subprocess
import threading

from chainfire_harness import cluster as harness

BENCH = os.path.join(os.path.dirname(harness.CHAINFIRE), "chainfire-bench")


def key_count(c, member):
    r = c.etcdctl("get", "", "--prefix", "--keys-only", "--limit=1", "-w", "json",
                  endpoints=member.endpoint)
    return json.loads(r.stdout).get("count", 0)


def test_long_scans_keep_the_leader_and_let_writes_through():
    with harness.Cluster(3) as c:
        leader = c.leader_member()
        # About 100,000 small keys: one linearizable scan of them all takes about a second.
        for i in range(8):
            if key_count(c, leader) >= 100000:
                break
            # chainfire-bench draws the same sequence each run: a new key space size each time
            # makes its keys mostly new.
            subprocess.run([BENCH, "--endpoints", leader.endpoint, "--op", "put", "--clients",
                            "100", "--conns", "10", "--seconds", "8", "--keys",
                            str(1000000 + 7919 * i), "--val-size", "10"],
                           check=True, capture_output=True, timeout=60)
        keys = key_count(c, leader)
        assert keys >= 100000, "the fill wrote only %d keys" % keys
        term = c.statuses([leader])[leader.endpoint]["header"]["raft_term"]

        stop, puts = threading.Event(), []

        def writer():  # point writes on the leader while the scans run
            i = 0
            while not stop.is_set():
                r = c.etcdctl("put", "during/%d" % i, "x", endpoints=leader.endpoint, check=False)
                puts.append(r.returncode)
                i += 1

        def scan():
            r = c.etcdctl("get", "", "--prefix", "--keys-only", "--command-timeout=60s",
                          endpoints=leader.endpoint, timeout=90)
            scanned.append(r.stdout.count("\n"))

        scanned = []
        w = threading.Thread(target=writer)
        w.start()
        try:
            for _ in range(2):  # two rounds of four scans at once
                scans = [threading.Thread(target=scan) for _ in range(4)]
                for t in scans:
                    t.start()
                for t in scans:
                    t.join(timeout=120)
        finally:
            stop.set()
            w.join(timeout=30)
        assert len(scanned) == 8 and all(n >= 2 * keys for n in scanned), scanned  # key + blank
        statuses = c.statuses()
        assert {s["header"]["raft_term"] for s in statuses.values()} == {term}, \
            "a scan held up the leader's heartbeats: %s" % statuses
        assert harness.leader_of(statuses) == statuses[leader.endpoint]["header"]["member_id"]
        assert puts and all(rc == 0 for rc in puts), puts
