"""The harness's parsers, on outputs recorded from etcdctl 3.4 against a real cluster."""
import os

from chainfire_harness import cluster
from chainfire_harness import probes as lanes

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def test_endpoint_status_three_members_agree_on_leader():
    statuses = cluster.parse_endpoint_status(fixture("endpoint_status_3.json"))
    assert sorted(statuses) == ["127.0.0.1:23791", "127.0.0.1:23792", "127.0.0.1:23793"]
    assert cluster.leader_of(statuses) == 10842555371325928956
    assert statuses["127.0.0.1:23791"]["version"] == "3.4.0"


def test_endpoint_status_disagreement_or_no_leader():
    statuses = cluster.parse_endpoint_status(fixture("endpoint_status_3.json"))
    statuses["127.0.0.1:23792"]["leader"] = 1
    assert cluster.leader_of(statuses) is None
    assert cluster.leader_of({"a": {"leader": 0}}) is None


def test_endpoint_status_all_down_is_empty():
    assert cluster.parse_endpoint_status(fixture("endpoint_status_down.json")) == {}
    assert cluster.parse_endpoint_status("") == {}


def test_member_list():
    members = cluster.parse_member_list(fixture("member_list.json"))
    assert [m[1] for m in members] == ["n1", "n2", "n3"]
    assert members[0][0] == "928f2c17ea8e4a3c"
    assert members[2][3] == ["http://127.0.0.1:23793"]


def test_get_json_decodes_keys_values_and_zero_fields():
    kvs = cluster.parse_get_json(fixture("get_prefix.json"))
    assert sorted(kvs) == ["a", "empty", "leased", "sp ace"]
    assert kvs["a"] == (b"22", 2, 3, 2, 0)
    assert kvs["empty"] == (b"", 4, 4, 1, 0), "etcdctl leaves an empty value out"
    assert kvs["leased"] == (b"x", 5, 5, 1, 0x2e0d60b8ba6d8e22)
    assert kvs["sp ace"][0] == "\xe9t\xe9".encode("utf-8")
    assert cluster.parse_get_json(fixture("get_none.json")) == {}


def test_diff_key_maps_reports_every_kind_of_difference():
    kvs = cluster.parse_get_json(fixture("get_prefix.json"))
    assert lanes.diff_key_maps(kvs, dict(kvs)) == []
    changed = dict(kvs)
    del changed["a"]  # missing
    changed["new"] = (b"n", 7, 7, 1, 0)  # extra
    changed["empty"] = (b"", 4, 5, 1, 0)  # other revision
    assert [d["key"] for d in lanes.diff_key_maps(kvs, changed)] == ["a", "empty", "new"]


def test_hashkv_json_gives_hash_and_revision_per_endpoint():
    hashes = lanes.parse_hashkv(fixture("endpoint_hashkv_3.json"))
    assert len(hashes) == 3
    assert len(set(hashes.values())) == 1, "recorded on a converged cluster"
    (h, rev), = set(hashes.values())
    assert h != 0 and rev > 1
    assert lanes.parse_hashkv("") == {}


def test_member_summary_of_a_leader_a_follower_and_a_silent_member():
    statuses = cluster.parse_endpoint_status(fixture("endpoint_status_3.json"))
    lines = [lanes.member_summary("n%d" % i, ep, True, st)
             for i, (ep, st) in enumerate(sorted(statuses.items()))]
    assert sum(x["leader"] for x in lines) == 1
    assert all(x["up"] and x["term"] >= 1 and x["applied_index"] > 0 for x in lines)
    down = lanes.member_summary("n9", "127.0.0.1:1", True, None)
    assert down == {"name": "n9", "endpoint": "127.0.0.1:1", "up": False}


def test_client_errors_are_classified_from_recorded_grpc_statuses():
    from chainfire_harness import rollout_soak
    recorded = [l.split("|", 1) for l in fixture("client_errors.txt").splitlines() if l]
    got = [rollout_soak.classify_error(code, details) for code, details in recorded]
    assert got == ["leader-changed", "no-leader", "timeout", "timeout", "server-stopped",
                   "connection-unavailable", "other:FAILED_PRECONDITION"]


def test_leaderless_only_when_no_live_member_names_a_live_leader():
    from chainfire_harness import rollout_soak
    up = {1, 2}
    assert not rollout_soak.leaderless({"a": {"id": 1, "leader": 2}}, up)
    assert rollout_soak.leaderless({"a": {"id": 1, "leader": 3}}, up), "the leader is down"
    assert rollout_soak.leaderless({"a": {"id": 1, "leader": 0}}, up)
    assert rollout_soak.leaderless({}, set())


def test_convergence_check_catches_a_tampered_hash_or_a_silent_member():
    from chainfire_harness import rollout_soak
    members = {ep: {"hash": h, "revision": r}
               for ep, (h, r) in lanes.parse_hashkv(fixture("endpoint_hashkv_3.json")).items()}
    assert rollout_soak.agreed(members)
    tampered = dict(members)
    first = sorted(tampered)[0]
    tampered[first] = dict(tampered[first], hash=tampered[first]["hash"] ^ 1)
    assert not rollout_soak.agreed(tampered)
    behind = dict(members)
    behind[first] = dict(behind[first], revision=behind[first]["revision"] - 1)
    assert not rollout_soak.agreed(behind)
    silent = dict(members)
    silent[first] = None
    assert not rollout_soak.agreed(silent)


# ---- the JSON gateway's streams and Patroni's member list (recorded from etcd 3.4.23 and
# Patroni 3.0.2 on ChainFire)

def test_gateway_stream_lines_and_the_final_error_object():
    from chainfire_harness import gateway
    objects = gateway.parse_stream(fixture("gateway_watch_compacted.txt").encode())
    assert [o["result"].get("created") for o in objects] == [True, None]
    assert objects[1]["result"]["canceled"] is True
    assert objects[1]["result"]["compact_revision"] == "3"
    status, body = fixture("gateway_stream_error.txt").split("\n", 1)
    error = gateway.parse_stream(body.encode())
    assert status == "500" and error == [{"error": {
        "grpc_code": 2, "http_code": 500, "message": "auth: invalid auth token",
        "http_status": "Internal Server Error"}}]
    assert gateway.parse_stream(b"") == []


def test_gateway_masking_hides_cluster_specific_values_only():
    from chainfire_harness import gateway
    objects = gateway.parse_stream(fixture("gateway_watch_compacted.txt").encode())
    masked = gateway.mask(objects)
    header = masked[0]["result"]["header"]
    assert header == {"cluster_id": "<masked>", "member_id": "<masked>", "revision": "4",
                      "raft_term": "<masked>"}
    assert masked[1]["result"]["compact_revision"] == "3"  # compared, not masked
    status = {"header": {"revision": "9"}, "version": "3.4.23", "dbSize": "1",
              "kvs": [{"key": "YQ==", "version": "2"}]}
    assert gateway.mask(status) == {"header": {"revision": "9"}, "version": "<masked>",
                                    "dbSize": "<masked>",
                                    "kvs": [{"key": "YQ==", "version": "2"}]}


def test_patronictl_list_names_leader_and_replica():
    from chainfire_harness import patroni
    members = patroni.parse_list(fixture("patronictl_list.json"))
    assert members["pg1"]["role"] == "Leader" and members["pg1"]["state"] == "running"
    assert members["pg2"]["role"] == "Replica" and members["pg2"]["lag"] == 0
    assert patroni.parse_list("[]") == {}


def test_perf_per_thread_counts_become_per_put_costs_per_member():
    """scripts/bench-syscalls.sh's parsing, on perf stat --per-thread output recorded over a
    28k-put run of a ChainFire cluster (and the thread map the script recorded with it)."""
    from chainfire_harness import syscall_counts
    counts = syscall_counts.parse_perf_per_thread(fixture("perf_stat_per_thread.txt"))
    assert counts[("cf-wal", 20213)]["sched_switch"] == 10739
    assert counts[("cf-wal", 20213)]["fdatasync"] == 2634, "sys_enter_ is dropped from names"
    assert counts[("resolver-execut", 20121)]["sched_switch"] == 0, "<not counted> is zero"
    member_of = {}
    for line in fixture("perf_stat_tids.txt").splitlines():
        tid, member = line.split()
        member_of[int(tid)] = member
    costs = syscall_counts.per_put(counts, member_of, 27899)
    assert sorted(costs) == ["b1", "b2", "b3"]
    wal = costs[member_of[20213]]["threads"]["cf-wal"]
    assert wal["fdatasync"] == round(2634 / 27899, 3)
    # A member's total is the sum over its threads; every fsync is the log writer's.
    for m in costs.values():
        assert abs(m["total"]["sched_switch"] -
                   sum(t.get("sched_switch", 0) for t in m["threads"].values())) < 0.01
        assert m["total"]["fdatasync"] == m["threads"]["cf-wal"]["fdatasync"]
    # Threads outside the map (another process) are left out; no puts is an error.
    assert syscall_counts.per_put(counts, {}, 1) == {}
    try:
        syscall_counts.per_put(counts, member_of, 0)
        raise AssertionError("dividing by zero puts must be refused")
    except ValueError:
        pass


def test_thread_policy_parser_on_recorded_proc_stat_lines():
    # Recorded: three threads of a member started with --cpu-scheduling batch, a thread named
    # "odd) (name" under `chrt -b 0` and a process with the kernel's default.
    lines = fixture("proc_task_stat.txt").splitlines()
    got = [lanes.parse_thread_policy(line) for line in lines]
    assert got == [("cf-node", "batch"), ("cf-wal", "batch"), ("nexting_thread", "batch"),
                   ("odd) (name", "batch"), ("plain", "normal")]


def test_thread_cpu_parser_on_recorded_proc_stat_lines():
    # Recorded: a one-member cluster after 2 s of gets, by default (one of gRPC's two callback
    # threads held), then with --grpc-callback-threads 0 (both run).
    lines = fixture("proc_task_stat_cpu.txt").splitlines()
    got = [lanes.parse_thread_cpu_ticks(line) for line in lines]
    assert got == [("nexting_thread", 88), ("nexting_thread", 0), ("cf-node", 59),
                   ("nexting_thread", 49), ("nexting_thread", 50), ("cf-node", 59)]


def test_wal_records_of_a_recorded_preallocated_wal():
    # Recorded: the WAL of a one-member cluster after 30 puts, killed, cut 2,000 zero bytes
    # after its last record (the file was 73,819,750 bytes: preallocated, zeros).
    with open(os.path.join(FIXTURES, "wal_preallocated.bin"), "rb") as f:
        data = f.read()
    records = lanes.wal_records(data)
    assert len(records) == 98 and {kind for _, kind, _ in records} == {1}
    assert records[0][0] == 0
    for (offset, _, length), (following, _, _) in zip(records, records[1:]):
        assert following == offset + lanes.WAL_HEADER_BYTES + length  # one block: contiguous
    end = records[-1][0] + lanes.WAL_HEADER_BYTES + records[-1][2]
    assert end == 10333 and data[end:] == bytes(len(data) - end)


def test_wal_records_cross_blocks_skip_padding_and_stop_at_zeros(tmp_path):
    def record(kind, payload):
        return b"\x11\x22\x33\x44" + len(payload).to_bytes(2, "little") + bytes([kind]) + payload

    block = lanes.WAL_BLOCK_BYTES
    first = record(1, b"a" * (block - 7 - 3))  # leaves 3 bytes: padding
    data = first + bytes(3)
    data += record(2, b"b" * (block - 7)) + record(4, b"c" * 10 + bytes(6))  # ends in zeros
    end = len(data)
    data += bytes(block)
    got = lanes.wal_records(data)
    assert got == [(0, 1, block - 10), (block, 2, block - 7), (2 * block, 4, 16)]
    path = tmp_path / "000009.log"
    path.write_bytes(data)
    assert lanes.wal_records_end(str(path)) == end
    path.write_bytes(b"")
    assert lanes.wal_records_end(str(path)) == 0


def test_free_ports_never_hands_out_a_port_twice_in_one_process():
    # The kernel offers a just-closed port again; one process's tests hold ports they were
    # given (a member about to bind) only by remembering them. 2,000 single draws from about
    # 14,000 candidates repeat a port many times over when nothing remembers them.
    drawn = [lanes.free_ports(1)[0] for _ in range(2000)] + lanes.free_ports(50)
    assert len(set(drawn)) == len(drawn)
