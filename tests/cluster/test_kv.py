"""Three real members; etcdctl 3.4 and python-etcd3 as clients."""
import json

import pytest

from chainfire_harness import cluster as harness


@pytest.fixture(scope="module")
def c():
    with harness.Cluster(3) as c:
        yield c


def test_put_on_one_member_read_from_each(c):
    a, b, d = c.members
    c.etcdctl("put", "greeting", "hello", endpoints=a.endpoint)
    for m in c.members:
        r = c.etcdctl("get", "greeting", endpoints=m.endpoint)
        assert r.stdout.splitlines() == ["greeting", "hello"]
    # A follower takes writes too (it forwards them to the leader).
    follower = next(m for m in c.members if m is not c.leader_member())
    c.etcdctl("put", "via-follower", "1", endpoints=follower.endpoint)
    assert c.etcdctl("get", "via-follower", "--print-value-only").stdout.strip() == "1"


def test_range_options(c):
    for k, v in [("r/a", "1"), ("r/b", "2"), ("r/c", "3"), ("s", "4")]:
        c.etcdctl("put", k, v)
    assert c.etcdctl("get", "r/", "--prefix", "--keys-only").stdout.split() == ["r/a", "r/b", "r/c"]
    assert c.etcdctl("get", "r/b", "--from-key", "--keys-only").stdout.split()[:3] == [
        "r/b", "r/c", "s"]
    r = json.loads(c.etcdctl("get", "r/", "--prefix", "--limit=2", "-w", "json").stdout)
    assert len(r["kvs"]) == 2 and r["more"] and r["count"] == 3
    desc = c.etcdctl("get", "r/", "--prefix", "--keys-only", "--sort-by=KEY", "--order=DESCEND")
    assert desc.stdout.split() == ["r/c", "r/b", "r/a"]
    # Reads at a past revision, and the error for a future one.
    rev = json.loads(c.etcdctl("put", "hist", "old", "-w", "json").stdout)["header"]["revision"]
    c.etcdctl("put", "hist", "new")
    assert c.etcdctl("get", "hist", "--rev=%d" % rev, "--print-value-only").stdout.strip() == "old"
    future = c.etcdctl("get", "hist", "--rev=%d" % (rev + 1000), check=False)
    assert future.returncode != 0
    assert "required revision is a future revision" in future.stderr
    # Serializable (local) reads.
    assert c.etcdctl("get", "hist", "--consistency=s", "--print-value-only").stdout.strip() == "new"


def test_versions_and_revisions_follow_etcd(c):
    first = json.loads(c.etcdctl("put", "ver", "1", "-w", "json").stdout)["header"]["revision"]
    c.etcdctl("put", "ver", "2")
    kv = json.loads(c.etcdctl("get", "ver", "-w", "json").stdout)["kvs"][0]
    assert kv["create_revision"] == first
    assert kv["mod_revision"] == first + 1
    assert kv["version"] == 2
    c.etcdctl("del", "ver")
    c.etcdctl("put", "ver", "3")
    kv = json.loads(c.etcdctl("get", "ver", "-w", "json").stdout)["kvs"][0]
    assert kv["version"] == 1 and kv["create_revision"] == first + 3


def test_delete_ranges_and_prev_kv(c):
    for k in ["d/1", "d/2", "d/3"]:
        c.etcdctl("put", k, "x")
    r = c.etcdctl("del", "d/", "--prefix", "--prev-kv")
    assert r.stdout.splitlines()[0] == "3"
    assert c.etcdctl("get", "d/", "--prefix").stdout == ""
    assert c.etcdctl("del", "nothing-here").stdout.strip() == "0"


def test_bad_input_is_refused_and_member_keeps_serving(c, clients):
    r = c.etcdctl("put", "", "x", check=False)
    assert r.returncode != 0 and "etcdserver: key is not provided" in r.stderr
    r = c.etcdctl("put", "missing-key", "--ignore-value", check=False)
    assert r.returncode != 0 and "etcdserver: key not found" in r.stderr
    big = "x" * (1572864 + 10)
    client = clients(c.members[0].client_port)
    with pytest.raises(Exception) as err:
        client.put("big", big)
    assert "request is too large" in str(err.value)
    c.etcdctl("put", "still-serving", "yes")
    assert c.etcdctl("get", "still-serving", "--print-value-only").stdout.strip() == "yes"


def test_member_list_status_health(c):
    members = harness.parse_member_list(c.etcdctl("member", "list", "-w", "json").stdout)
    assert [m[1] for m in members] == ["n1", "n2", "n3"]
    for (hex_id, name, peers, clients), m in zip(members, c.members):
        assert peers == [m.peer_url]
        assert clients == ["http://" + m.endpoint], "every member reports every client URL"
    statuses = c.statuses()
    assert len(statuses) == 3
    for s in statuses.values():
        assert s["version"] == "3.4.0"
        assert s["dbSize"] > 0
        assert s["raftIndex"] >= s["raftAppliedIndex"] > 0
    assert "is healthy" in c.etcdctl("endpoint", "health").stderr + c.etcdctl(
        "endpoint", "health").stdout
    # IDs are derived from the flags: the same on every member, stable across calls.
    again = harness.parse_member_list(
        c.etcdctl("member", "list", "-w", "json", endpoints=c.members[2].endpoint).stdout)
    assert again == members


def test_membership_changes_are_refused(c):
    for args in (["member", "add", "n4", "--peer-urls=http://127.0.0.1:1"],
                 ["member", "remove", "1234"],
                 ["member", "update", "1234", "--peer-urls=http://127.0.0.1:1"]):
        r = c.etcdctl(*args, check=False)
        assert r.returncode != 0
        assert "FailedPrecondition" in r.stderr and "membership is fixed at boot" in r.stderr


def test_python_etcd3(c, clients):
    client = clients(c.members[1].client_port)
    client.put("py/a", "1")
    client.put("py/b", "2")
    value, meta = client.get("py/a")
    assert value == b"1" and meta.key == b"py/a"
    assert sorted(m.key for _, m in client.get_prefix("py/")) == [b"py/a", b"py/b"]
    assert b"py/b" in [m.key for _, m in client.get_all()]
    assert client.delete("py/a")
    assert client.get("py/a") == (None, None)
    assert client.status().version == "3.4.0"


def test_five_members_and_one_member():
    with harness.Cluster(5) as c:
        c.etcdctl("put", "five", "5", endpoints=c.members[4].endpoint)
        for m in c.members:
            assert c.etcdctl("get", "five", "--print-value-only",
                             endpoints=m.endpoint).stdout.strip() == "5"
        assert len(harness.parse_member_list(c.etcdctl("member", "list", "-w", "json").stdout)) == 5
    with harness.Cluster(1) as c:
        c.etcdctl("put", "one", "1")
        assert c.etcdctl("get", "one", "--print-value-only").stdout.strip() == "1"


def test_rpcs_not_served_answer_unimplemented(c):
    # v3lock and v3election are later issues: gRPC answers UNIMPLEMENTED for them.
    import grpc
    channel = grpc.insecure_channel(c.members[0].endpoint)
    for method in ("/v3lockpb.Lock/Lock", "/v3electionpb.Election/Campaign"):
        try:
            channel.unary_unary(method)(b"", timeout=10)
            raise AssertionError("expected UNIMPLEMENTED")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNIMPLEMENTED, method
    channel.close()


def test_etcdctl_txn_from_a_file_and_interactive(c):
    c.etcdctl("put", "tx", "v1")
    script = 'value("tx") = "v1"\n\nput tx v2\nput tx-side yes\n\nput tx failed\n\n'
    env = dict(harness.os.environ, ETCDCTL_API="3")
    for extra in ([], ["-i"]):
        r = harness.subprocess.run(["etcdctl", "--endpoints=" + c.endpoints, "txn"] + extra,
                                   input=script, capture_output=True, text=True, env=env,
                                   timeout=20)
        assert r.returncode == 0, r.stderr
        if not extra:
            assert r.stdout.splitlines()[0] == "SUCCESS"
            assert c.etcdctl("get", "tx", "--print-value-only").stdout.strip() == "v2"
        else:
            assert "FAILURE" in r.stdout, r.stdout  # tx is v2 now
            assert c.etcdctl("get", "tx", "--print-value-only").stdout.strip() == "failed"
    # etcd's limits and duplicate rules.
    r = harness.subprocess.run(["etcdctl", "--endpoints=" + c.endpoints, "txn"],
                               input="\nput d 1\nput d 2\n\n\n", capture_output=True,
                               text=True, env=env, timeout=20)
    assert r.returncode != 0 and "duplicate key given in txn request" in r.stderr


def test_python_etcd3_transaction(c, clients):
    client = clients(c.members[0].client_port)
    client.put("ptx", "a")
    ok, responses = client.transaction(
        compare=[client.transactions.value("ptx") == "a"],
        success=[client.transactions.put("ptx", "b"), client.transactions.get("ptx")],
        failure=[])
    assert ok
    assert responses[1][0][0] == b"b"
    ok, _ = client.transaction(compare=[client.transactions.value("ptx") == "a"],
                               success=[client.transactions.put("ptx", "c")],
                               failure=[client.transactions.put("ptx-failed", "1")])
    assert not ok
    assert client.get("ptx")[0] == b"b"
    assert client.get("ptx-failed")[0] == b"1"


def test_read_only_txn_is_served_without_the_log(c, clients):
    """A txn of only ranges is answered from the member's state after a read index (as etcd):
    linearizable on a follower, and the log does not grow; a txn with a put goes through it."""
    leader = c.leader_member()
    follower = next(m for m in c.members if m is not leader)
    reader = clients(follower.client_port)
    writer = clients(leader.client_port)

    def raft_index():
        return c.statuses([leader])[leader.endpoint]["raftIndex"]

    before = raft_index()
    for i in range(20):
        writer.put("rotx", str(i))
        ok, responses = reader.transaction(
            compare=[reader.transactions.value("rotx") == str(i)],
            success=[reader.transactions.get("rotx")], failure=[])
        assert ok, "the follower's read-only txn missed the acknowledged put %d" % i
        assert responses[0][0][0] == str(i).encode()
    assert raft_index() - before == 20, "only the puts went through the log"

    before = raft_index()
    ok, _ = reader.transaction(compare=[reader.transactions.value("rotx") == "19"],
                               success=[reader.transactions.put("rotx", "w")], failure=[])
    assert ok and raft_index() - before == 1, "a txn with a put is one log entry"
    assert writer.get("rotx")[0] == b"w"


def test_compaction_hashkv_defrag_move_leader(c):
    for i in range(20):
        c.etcdctl("put", "cmp", str(i))
    rev = json.loads(c.etcdctl("get", "cmp", "-w", "json").stdout)["header"]["revision"]
    c.etcdctl("compaction", str(rev), "--physical")
    r = c.etcdctl("get", "cmp", "--rev=%d" % (rev - 5), check=False)
    assert r.returncode != 0 and "required revision has been compacted" in r.stderr
    assert c.etcdctl("get", "cmp", "--rev=%d" % rev, "--print-value-only").stdout.strip() == "19"
    # Every member reports the same hash at the same revision.
    hashes = set()
    for m in c.members:
        out = json.loads(c.etcdctl("endpoint", "hashkv", "--rev=%d" % rev, "-w", "json",
                                   endpoints=m.endpoint).stdout)
        assert out[0]["HashKV"]["compact_revision"] == rev
        hashes.add(out[0]["HashKV"]["hash"])
    assert len(hashes) == 1, hashes
    assert "Finished defragmenting" in c.etcdctl("defrag").stdout
    # move-leader hands leadership to a follower.
    leader = c.leader_member()
    target = next(m for m in c.members if m is not leader)
    members = harness.parse_member_list(c.etcdctl("member", "list", "-w", "json").stdout)
    target_id = next(x[0] for x in members if x[1] == target.name)
    c.etcdctl("move-leader", target_id, endpoints=c.endpoints)
    assert c.leader_member() is target


def _bench(c, *args):
    from chainfire_harness import probes
    return probes.tool("chainfire-bench", *args, check=False, timeout=60)


def test_bench_tool_each_acknowledged_put_is_one_revision(c):
    """chainfire-bench's puts against every member (under load, so apply batches hold many
    entries): each acknowledged put is exactly one new revision, every member converges."""
    eps = ",".join(m.endpoint for m in c.members)
    before = json.loads(c.etcdctl("put", "bench-before", "x", "-w", "json").stdout)
    run = _bench(c, "--endpoints", eps, "--op", "put", "--clients", "64", "--conns", "6",
                 "--seconds", "2", "--keys", "500", "--val-size", "100")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["errors"] == 0 and result["ok"] > 100, result
    after = json.loads(c.etcdctl("put", "bench-after", "x", "-w", "json").stdout)
    assert after["header"]["revision"] - before["header"]["revision"] == result["ok"] + 1
    # Reads see the writes, and all members hold the same state.
    got = _bench(c, "--endpoints", eps, "--op", "get", "--clients", "16", "--conns", "3",
                 "--seconds", "1", "--keys", "500")
    assert got.returncode == 0 and json.loads(got.stdout)["errors"] == 0, got.stdout
    keys = c.etcdctl("get", "bench/", "--prefix", "--keys-only").stdout.split()
    assert 0 < len(keys) <= 500
    hashes = set()
    for m in c.members:
        for _ in range(100):  # bounded: followers apply within a moment
            st = json.loads(c.etcdctl("endpoint", "hashkv", "-w", "json",
                                      endpoints=m.endpoint).stdout)[0]["HashKV"]
            if st["header"]["revision"] >= after["header"]["revision"]:
                break
        assert st["header"]["revision"] == after["header"]["revision"]
        hashes.add(st["hash"])
    assert len(hashes) == 1


def test_bench_tool_fill_writes_each_key_once(c):
    """chainfire-bench --op fill (scripts/bench-restart.sh's fill): every key of the range is
    written exactly once, then it stops."""
    from chainfire_harness import probes
    eps = ",".join(m.endpoint for m in c.members)
    run = _bench(c, "--endpoints", eps, "--op", "fill", "--clients", "16", "--conns", "3",
                 "--seconds", "30", "--keys", "300", "--val-size", "10")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["ok"] == 300
    kvs = probes.parse_get_json(c.etcdctl("get", "bench/0000000", "--prefix", "-w", "json").stdout)
    assert sorted(kvs) == ["bench/%010d" % i for i in range(300)]
    assert {kv[3] for kv in kvs.values()} == {1}, "each key written once (version 1)"


def test_bench_tool_fails_against_a_dead_endpoint(c):
    run = _bench(c, "--endpoints", "127.0.0.1:1", "--op", "put", "--clients", "2", "--conns",
                 "1", "--seconds", "1")
    assert run.returncode == 1
    result = json.loads(run.stdout)
    assert result["ok"] == 0 and result["errors"] > 0
