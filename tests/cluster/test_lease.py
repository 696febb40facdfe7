"""Leases through real clients: grant/revoke/keep-alive/time-to-live/list with etcdctl,
python-etcd3 leases and lock(), expiry decided by the leader, and a leader kill."""
import json
import signal
import time

import etcd3
import pytest

from chainfire_harness import cluster as harness


@pytest.fixture(scope="module")
def c():
    with harness.Cluster(3) as c:
        yield c


def lease_id(c, ttl, *extra):
    out = c.etcdctl("lease", "grant", str(ttl), *extra).stdout  # "lease <hex> granted with TTL(..)"
    return out.split()[1]


def wait_gone(c, key, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if c.etcdctl("get", key, "--keys-only").stdout.strip() == "":
            return time.time()
        time.sleep(0.1)
    return None


def test_grant_attach_time_to_live_list_revoke(c):
    lid = lease_id(c, 60)
    c.etcdctl("put", "--lease=" + lid, "l/a", "1")
    c.etcdctl("put", "--lease=" + lid, "l/b", "2")
    for m in c.members:  # a follower forwards the query to the leader
        out = c.etcdctl("lease", "timetolive", lid, "--keys", endpoints=m.endpoint).stdout
        assert "granted with TTL(60s)" in out and "l/a" in out and "l/b" in out
    assert lid in c.etcdctl("lease", "list").stdout
    c.etcdctl("lease", "revoke", lid)
    assert c.etcdctl("get", "l/", "--prefix").stdout == ""
    assert "already expired" in c.etcdctl("lease", "timetolive", lid).stdout
    r = c.etcdctl("put", "--lease=" + lid, "l/c", "3", check=False)
    assert r.returncode != 0 and "requested lease not found" in r.stderr


def test_duplicate_id_and_minimum_ttl(c, clients):
    client = clients(c.members[0].client_port)
    lease = client.lease(60, lease_id=0x5eed)
    # FailedPrecondition "etcdserver: lease already exists"; python-etcd3 maps the code.
    with pytest.raises(etcd3.exceptions.PreconditionFailedError):
        client.lease(60, lease_id=0x5eed)
    short = client.lease(1)
    # The grant's own answer carries the TTL given (python-etcd3's granted_ttl would ask
    # time-to-live afterwards, and on a loaded machine the lease may have expired by then).
    assert short.ttl >= 1  # at least the minimum TTL
    # Time-to-live reports the granted TTL (checked on the long lease: on a loaded machine the
    # short one may be gone before etcdctl starts).
    ttl = json.loads(c.etcdctl("lease", "timetolive", "%x" % lease.id, "-w", "json").stdout)
    assert ttl["granted-ttl"] == 60 and 0 < ttl["ttl"] <= 60
    lease.revoke()
    # Unknown leases: keep-alive answers TTL 0 and time-to-live -1 (not errors), as etcd.
    assert list(client.refresh_lease(0x0dead))[0].TTL == 0
    r = c.etcdctl("lease", "timetolive", "dead0", "-w", "json")
    assert json.loads(r.stdout)["ttl"] == -1


def test_keep_alive_through_a_follower_and_expiry(c):
    leader = c.leader_member()
    follower = next(m for m in c.members if m is not leader)
    # Timing follows from the TTLs alone: a lease never expires before its TTL has passed since
    # the grant was sent (the leader counts from when it applies the grant, later), and a kept
    # lease is still there after its first TTL has passed since its grant.
    kept_ttl, dropped_ttl = 10, 2  # 10: etcdctl keep-alive starts late on a loaded machine
    kept_sent = time.time()
    kept = lease_id(c, kept_ttl)
    dropped_sent = time.time()
    dropped = lease_id(c, dropped_ttl)
    c.etcdctl("put", "--lease=" + kept, "kept", "1")
    c.etcdctl("put", "--lease=" + dropped, "dropped", "1")
    env = dict(harness.os.environ, ETCDCTL_API="3")
    keeper = harness.subprocess.Popen(
        ["etcdctl", "--endpoints=" + follower.endpoint, "lease", "keep-alive", kept],
        stdout=harness.subprocess.PIPE, stderr=harness.subprocess.DEVNULL, env=env, text=True)
    try:
        # etcdctl prints a line per renewal; the first one says the follower forwarded it.
        first = queue_lines(keeper.stdout)
        renewed = first.get(timeout=15)
        assert "keepalived with TTL(%d)" % kept_ttl in renewed, renewed
        gone = wait_gone(c, "dropped", 15 + dropped_ttl)
        assert gone is not None, "an expired lease's key is deleted"
        assert gone - dropped_sent >= dropped_ttl, "expired before its TTL"
        # Past the kept lease's first TTL (the margin: a second), only renewals keep it.
        while time.time() < kept_sent + kept_ttl + 1:
            time.sleep(0.1)
        assert c.etcdctl("get", "kept", "--print-value-only").stdout.strip() == "1"
    finally:
        keeper.send_signal(signal.SIGINT)
        keeper.wait(timeout=10)
    assert wait_gone(c, "kept", 15 + kept_ttl) is not None


def queue_lines(stream):
    """A queue fed with the lines of `stream` by a daemon thread (reads with a timeout)."""
    import queue
    import threading
    q = queue.Queue()

    def pump():
        for line in stream:
            q.put(line)
    threading.Thread(target=pump, daemon=True).start()
    return q


def test_python_etcd3_lock_taken_in_turn(c, clients):
    # python3-etcd3's blocking acquire is broken against Debian's tenacity (a TypeError in its
    # retry wait), so each acquire here is uncontended: the lock changes hands by release and
    # by lease expiry, and the holder is visible in the store meanwhile.
    a = clients(c.members[0].client_port)
    b = clients(c.members[1].client_port)
    lock_a = a.lock("res", ttl=10)
    assert lock_a.acquire(timeout=5)
    assert lock_a.is_acquired()
    assert b.get("/locks/res")[0] == lock_a.uuid
    lock_a.release()
    lock_b = b.lock("res", ttl=2)
    assert lock_b.acquire(timeout=5)
    assert a.get("/locks/res")[0] == lock_b.uuid
    # b never refreshes: its lease expires and the lock frees itself.
    assert wait_gone(c, "/locks/res", 15) is not None
    assert lock_a.acquire(timeout=5)
    lock_a.release()


def test_leases_survive_a_leader_kill_without_expiring_early():
    with harness.Cluster(3) as c:
        lid = lease_id(c, 8)  # room for the election and etcdctl on a loaded machine
        c.etcdctl("put", "--lease=" + lid, "lk", "v")
        c.leader_member().kill(signal.SIGKILL)
        c.wait_for_leader()
        # The new leader resets expiry to the full TTL plus an election timeout.
        assert c.etcdctl("get", "lk", "--print-value-only").stdout.strip() == "v"
        assert wait_gone(c, "lk", 30) is not None, "and the lease still expires later"
