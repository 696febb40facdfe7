"""Real faults against real members: SIGKILL of the leader under writes, restarts with other
flags, a wiped member, loss of quorum, SIGTERM."""
import json
import os
import re
import signal
import threading
import time

from chainfire_harness import cluster as harness
from chainfire_harness import probes


def test_kill_leader_under_writes_loses_no_acknowledged_write():
    with harness.Cluster(3) as c:
        acked, errors, stop = [], [], threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                i += 1
                r = c.etcdctl("put", "w/%05d" % i, "v%d" % i, check=False, timeout=30)
                if r.returncode == 0:
                    acked.append(i)
                else:
                    errors.append(r.stderr.strip().splitlines()[-1])

        t = threading.Thread(target=writer)
        t.start()
        deadline = time.time() + 20
        while len(acked) < 10 and time.time() < deadline:
            time.sleep(0.05)
        victim = c.leader_member()
        old_leader = c.wait_for_leader()
        assert victim.kill(signal.SIGKILL) is not None
        before = len(acked)
        deadline = time.time() + 20
        while len(acked) < before + 10 and time.time() < deadline:
            time.sleep(0.05)
        stop.set()
        t.join(timeout=60)
        assert len(acked) >= before + 10, "writes resumed under a new leader"
        print("errors while the leader was down:", errors)
        # Writes caught by the failover fail with etcd's errors (or etcdctl's own dial errors
        # toward the dead member), never hang.
        for e in errors:
            assert any(x in e for x in ("etcdserver: no leader", "etcdserver: leader changed",
                                        "etcdserver: request timed out", "connection refused",
                                        "context deadline exceeded", "Unavailable")), e
        new_leader = c.wait_for_leader()
        assert new_leader != old_leader
        # The killed member restarts and catches up.
        victim.start()
        c.wait_for_leader(members=c.members)
        for m in c.members:
            got = c.etcdctl("get", "w/", "--prefix", "--keys-only", endpoints=m.endpoint)
            keys = {int(k[2:]) for k in got.stdout.split()}
            missing = [i for i in acked if i not in keys]
            assert not missing, "%s lost acknowledged writes %s" % (m.name, missing[:10])


def test_restart_with_same_flags_works_and_changed_membership_is_refused():
    with harness.Cluster(3) as c:
        c.etcdctl("put", "k", "v")
        m = c.members[2]
        assert m.kill(signal.SIGTERM) == 0
        other = c.initial_cluster + ",n4=http://127.0.0.1:1"
        code, out = m.run_to_exit(initial_cluster=other)
        assert code != 0
        assert "belongs to another membership" in out
        assert "data dir holds" in out and "flags say" in out and "n4=" in out
        # The same flags still work, and the data is there.
        m.start()
        c.wait_for_leader(members=c.members)
        r = c.etcdctl("get", "k", "--print-value-only", "--consistency=s", endpoints=m.endpoint)
        assert r.stdout.strip() == "v"


def test_wiped_member_is_refused_but_a_late_first_start_is_not():
    c = harness.Cluster(3)
    try:
        first, second, late = c.members
        first.start()
        second.start()
        c.wait_for_leader(members=[first, second])
        c.etcdctl("put", "k", "v", endpoints=first.endpoint)
        # A member that never ran may start late with an empty data dir.
        late.start()
        c.wait_for_leader(members=c.members)
        assert c.etcdctl("get", "k", "--print-value-only", "--consistency=s",
                         endpoints=late.endpoint).stdout.strip() == "v"
        # Once it has joined, wiping its data dir and starting as "new" is refused.
        deadline = time.time() + 10
        while time.time() < deadline:
            names = [x[1] for x in harness.parse_member_list(
                c.etcdctl("member", "list", "-w", "json", endpoints=first.endpoint).stdout)]
            if "n3" in names:
                break
            time.sleep(0.1)
        late.kill(signal.SIGKILL)
        harness.subprocess.run(["rm", "-rf", late.data_dir], check=True)
        code, out = late.run_to_exit()
        assert code != 0
        assert "already joined" in out and "must not rejoin" in out
    finally:
        c.__exit__(None, None, None)


def test_without_quorum_writes_fail_in_bounded_time_and_reads_too():
    with harness.Cluster(3) as c:
        c.etcdctl("put", "k", "v")
        survivor = c.members[0]
        for m in c.members[1:]:
            m.kill(signal.SIGKILL)
        start = time.time()
        r = c.etcdctl("put", "k", "v2", endpoints=survivor.endpoint, check=False, timeout=60)
        assert r.returncode != 0
        assert ("etcdserver: no leader" in r.stderr or "request timed out" in r.stderr
                or "leader changed" in r.stderr), r.stderr
        assert time.time() - start < 30
        r = c.etcdctl("get", "k", endpoints=survivor.endpoint, check=False, timeout=60)
        assert r.returncode != 0
        # Serializable reads are still served from the local store.
        r = c.etcdctl("get", "k", "--consistency=s", "--print-value-only",
                      endpoints=survivor.endpoint)
        assert r.stdout.strip() == "v"


def test_sigterm_stops_cleanly_and_keeps_data():
    with harness.Cluster(3) as c:
        c.etcdctl("put", "durable", "yes")
        for m in c.members:
            start = time.time()
            assert m.kill(signal.SIGTERM, timeout=15) == 0
            assert time.time() - start < 10
        for m in c.members:
            m.start()
        c.wait_for_leader(members=c.members)
        assert c.etcdctl("get", "durable", "--print-value-only").stdout.strip() == "yes"


def test_disk_loss_recovery_grants_no_vote_until_caught_up():
    with harness.Cluster(3, extra=["--snapshot-count", "40",
                                   "--experimental-snapshot-catchup-entries", "5"]) as c:
        for i in range(120):
            c.etcdctl("put", "k/%03d" % i, "v%d" % i)
        leader = c.leader_member()
        lost, other = [m for m in c.members if m is not leader]
        # `lost` loses its disk; `leader` goes down too, leaving `other` alone with it.
        lost.kill(signal.SIGKILL)
        harness.subprocess.run(["rm", "-rf", lost.data_dir], check=True)
        leader.kill(signal.SIGKILL)
        lost.start(state="existing", extra=c.extra)
        # `other` needs one vote to lead; the recovering member grants none. (Until its
        # election timeout `other` may still name the dead leader.)
        live = set()
        for m in (other, lost):
            live.add(c.statuses([m])[m.endpoint]["header"]["member_id"])
        deadline = time.time() + 4
        while time.time() < deadline:
            st = c.statuses([other, lost])
            assert not {s.get("leader", 0) for s in st.values()} & live, st
            time.sleep(0.2)
        r = c.etcdctl("put", "x", "y", endpoints=other.endpoint, check=False)
        assert r.returncode != 0
        # With the third member back, a leader is elected and the lost member catches up.
        leader.start(extra=c.extra)
        c.wait_for_leader()
        c.etcdctl("put", "after", "recovery")
        revision = c.statuses([other])[other.endpoint]["header"]["revision"]
        deadline = time.time() + 30
        while time.time() < deadline:
            st = c.statuses()
            if len(st) == 3 and all(s["header"]["revision"] >= revision for s in st.values()):
                break
            time.sleep(0.1)
        got = harness.parse_get_json(c.etcdctl("get", "", "--prefix", "-w", "json",
                                               "--consistency=s", endpoints=lost.endpoint).stdout)
        assert len(got) == 121 and got["after"][0] == b"recovery"
        hashes = json.loads(c.etcdctl("endpoint", "hashkv", "-w", "json").stdout)
        assert len({h["HashKV"]["hash"] for h in hashes}) == 1
        deadline = time.time() + 10
        while "finished disk-loss recovery" not in lost.log() and time.time() < deadline:
            time.sleep(0.1)
        assert "finished disk-loss recovery" in lost.log()


def test_existing_on_an_empty_data_dir_needs_a_running_cluster():
    c = harness.Cluster(3)
    try:
        code, out = c.members[0].run_to_exit(state="existing")
        assert code != 0 and "no other member of cluster" in out
        assert not os.path.exists(os.path.join(c.members[0].data_dir, "CURRENT"))
    finally:
        c.__exit__(None, None, None)


def test_sigterm_on_the_leader_hands_leadership_over_before_exiting():
    with harness.Cluster(3) as c:
        c.etcdctl("put", "k", "v")
        old = c.leader_member()
        old_id = c.statuses([old])[old.endpoint]["header"]["member_id"]
        assert old.kill(signal.SIGTERM) == 0
        # Within 0.25 s of the exit (half the shortest election timeout, 500 ms) the others
        # name a new, live leader: the hand-over happened before the old leader exited. Without
        # it they would name the dead leader until their election timeout.
        exited = time.time()
        others = [m for m in c.members if m is not old]
        st, leaders = {}, set()
        while time.time() - exited < 0.25:
            st = c.statuses(others)
            leaders = {s.get("leader") for s in st.values()}
            if len(st) == 2 and len(leaders) == 1 and not leaders & {old_id, 0, None}:
                break
        assert len(st) == 2 and len(leaders) == 1 and not leaders & {old_id, 0, None}, st
        assert "handed leadership to" in old.log()
        c.etcdctl("put", "after", "handover", endpoints=others[0].endpoint)


def newest_wal(data_dir):
    wals = sorted(f for f in os.listdir(data_dir) if f.endswith(".log") and f[0].isdigit())
    return os.path.join(data_dir, wals[-1])


def test_corrupt_wal_middle_is_refused_naming_file_and_offset_torn_tail_is_repaired():
    with harness.Cluster(3) as c:
        for i in range(200):
            c.etcdctl("put", "c%03d" % i, "v" * 100)
        m = c.members[2]
        # A clean stop flushes the memtables: its newest WAL holds nothing to replay. A crash
        # (kill -9) leaves the writes in the WAL, where the damage below goes.
        assert m.kill(signal.SIGTERM) == 0
        assert os.path.getsize(newest_wal(m.data_dir)) < 1000
        m.start()
        c.wait_for_leader(members=c.members)
        for i in range(200, 400):
            c.etcdctl("put", "c%03d" % i, "v" * 100)
        m.kill(signal.SIGKILL)
        wal = newest_wal(m.data_dir)
        # An open WAL is preallocated: its records, then zeros up to its size.
        size = probes.wal_records_end(wal)
        assert size > 20000
        # A torn tail (the first sectors of a record a power loss interrupted after the last
        # one, zeros after them: it was never synced): cut, the member starts and has every key.
        with open(wal, "r+b") as f:
            f.seek(size)
            f.write(b"\x11\x22\x33\x44" + (1500).to_bytes(2, "little") + b"\x01" + b"z" * 600)
        m.start()
        c.wait_for_leader(members=c.members)
        r = c.etcdctl("get", "c", "--prefix", "--keys-only", "--consistency=s",
                      endpoints=m.endpoint)
        assert len(r.stdout.split()) == 400
        # More writes, then a flipped byte in the middle of the member's log: refused, naming
        # the file and the offset.
        for i in range(200):
            c.etcdctl("put", "d%03d" % i, "w" * 100)
        m.kill(signal.SIGKILL)
        wal = newest_wal(m.data_dir)
        data = bytearray(open(wal, "rb").read())
        end = probes.wal_records_end(wal)
        assert end > 20000
        pos = end // 2
        data[pos] ^= 0x40
        open(wal, "wb").write(bytes(data))
        code, out = m.run_to_exit()
        assert code != 0
        assert "refusing to start on a damaged data dir" in out, out[-2000:]
        found = re.search(re.escape(wal) + r" at offset (\d+): checksum mismatch", out)
        assert found, out[-2000:]
        assert pos - 32768 < int(found.group(1)) <= pos
        # The cluster kept serving throughout.
        c.etcdctl("put", "after", "1", endpoints=c.members[0].endpoint)


def test_members_on_links_and_on_grpc_streams_form_one_cluster():
    """One member with --peer-transport grpc (as a member without peer links, e.g. an older
    build): the others find that its port does not speak links and send to it over its gRPC
    stream, it reaches them over their shared peer ports. Writes through every member are read
    back from every member's own store, also after the leader is killed."""
    c = harness.Cluster(3)
    c.members[2].extra = ["--peer-transport", "grpc"]

    def local_keys(member):
        r = c.etcdctl("get", "mixed/", "--prefix", "--keys-only", "--consistency=s",
                      endpoints=member.endpoint, check=False)
        return {k for k in r.stdout.split() if k}

    def wait_keys(members, keys):
        deadline = time.time() + 20
        while time.time() < deadline:
            if all(keys <= local_keys(m) for m in members):
                return True
            time.sleep(0.1)
        return False

    with c:
        c.wait_for_leader()
        for i, m in enumerate(c.members):
            c.etcdctl("put", "mixed/%d" % i, "v", endpoints=m.endpoint)
        written = {"mixed/0", "mixed/1", "mixed/2"}
        assert wait_keys(c.members, written), {m.name: local_keys(m) for m in c.members}
        old_id = c.wait_for_leader()
        leader = c.leader_member()
        leader.kill()
        survivors = [m for m in c.members if m is not leader]
        deadline = time.time() + 20  # until the survivors stop naming the dead leader
        while c.wait_for_leader(survivors) == old_id and time.time() < deadline:
            time.sleep(0.1)
        assert c.wait_for_leader(survivors) != old_id
        for m in survivors:
            c.etcdctl("put", "mixed/after-" + m.name, "v", endpoints=m.endpoint, timeout=30)
        written |= {"mixed/after-" + m.name for m in survivors}
        assert wait_keys(survivors, written), {m.name: local_keys(m) for m in survivors}
