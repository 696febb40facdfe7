"""The chaos lane (nix/test-cluster/cluster chaos): its pure judgments on recorded inputs, a
short run against a real cluster under faults that must pass, and a run in the deliberately
unsafe mode (serializable reads on a partitioned member) that must fail."""
import json
import os
import subprocess
import tempfile

from chainfire_harness import cluster
from chainfire_harness import probes as lanes
from chainfire_harness import chaos

SCRIPT = os.path.join(lanes.REPO, "nix", "test-cluster", "cluster")
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
LINCHECK = os.path.join(os.path.dirname(cluster.CHAINFIRE), "chainfire-lincheck")


def test_op_outcome_on_recorded_errors():
    rows = [line.rstrip("\n").split("|") for line in open(os.path.join(FIXTURES,
                                                                        "chaos_op_errors.txt"))
            if line.strip() and not line.startswith("#")]
    assert len(rows) == 6
    for code, details, want in rows:
        assert chaos.op_outcome(True, code, details) == want, (code, details)
        assert chaos.op_outcome(False, code, details) == "fail"  # a read has no effect


def test_schedule_is_a_function_of_the_seed():
    a = chaos.schedule(7, 60)
    assert a == chaos.schedule(7, 60)
    assert a != chaos.schedule(8, 60)
    assert sum(h + q + 2.0 for _, _, h, q in a) >= 60
    assert {k for k, _, _, _ in chaos.schedule(1, 2000)} == set(chaos.FAULT_KINDS)
    assert {k for k, _, _, _ in chaos.schedule(1, 300, ("one-way",))} == {"one-way"}


def test_partition_links():
    names = ["c1", "c2", "c3"]
    assert sorted(chaos.partition_links("isolate-member", names, "c2", "c1")) == [
        ("c1", "c2"), ("c2", "c1"), ("c2", "c3"), ("c3", "c2")]
    assert sorted(chaos.partition_links("isolate-leader", names, "c2", "c3")) == [
        ("c1", "c3"), ("c2", "c3"), ("c3", "c1"), ("c3", "c2")]
    one_way = chaos.partition_links("one-way", names, "c1", "c1")
    assert len(one_way) == 1 and one_way[0][0] == "c1" and one_way[0][1] != "c1"
    assert chaos.partition_links("kill", names, "c2", "c1") == []


def test_lost_writes():
    acked = [("k", "a", 5), ("k", "b", 9), ("j", "x", 7)]
    found = {("k", 5): ("a", 5), ("k", 9): ("b", 9), ("j", 7): ("x", 7)}
    assert chaos.lost_writes(acked, found) == []
    overwritten = dict(found)
    overwritten[("k", 9)] = ("a", 5)  # the write at 9 is not there: 9 still reads 5's value
    assert [x["value"] for x in chaos.lost_writes(acked, overwritten)] == ["b"]
    assert len(chaos.lost_writes(acked, {("k", 5): ("a", 5)})) == 2  # two never found
    moved = dict(found)
    moved[("j", 7)] = ("x", 6)  # same value, but not the write acknowledged at 7
    assert len(chaos.lost_writes(acked, moved)) == 1


def test_checked_history_feeds_the_checker():
    ops = [
        {"id": 1, "client": 0, "kind": "put", "key": "r", "value": "a", "call": 1, "ret": 2,
         "outcome": "ok", "member": 0},
        {"id": 2, "client": 1, "kind": "put", "key": "r", "value": "b", "call": 3,
         "outcome": "unknown", "unknown": True, "error": "DEADLINE_EXCEEDED: x", "member": 1},
        {"id": 3, "client": 1, "kind": "get", "key": "r", "call": 4, "ret": 5, "outcome": "fail",
         "error": "UNAVAILABLE: y", "member": 2},
        {"id": 4, "client": 0, "kind": "cas", "key": "r", "expected": "b", "value": "c",
         "cas_ok": True, "call": 6, "ret": 7, "outcome": "ok", "member": 0},
        {"id": 5, "client": 0, "kind": "get", "key": "r", "output": "c", "call": 8, "ret": 9,
         "outcome": "ok", "member": 0},
    ]
    lines = chaos.checked_history(ops)
    assert [x["id"] for x in lines] == [1, 2, 4, 5]
    assert lines[1] == {"id": 2, "client": 1, "kind": "put", "key": "r", "value": "b",
                        "call": 3, "unknown": True}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "h.jsonl")
        with open(path, "w") as f:
            f.write("".join(json.dumps(x) + "\n" for x in lines))
        assert subprocess.run([LINCHECK, path], capture_output=True).returncode == 0
        # The same history with the unknown put turned into a failed one cannot explain the
        # successful compare-and-swap on "b".
        with open(path, "w") as f:
            f.write("".join(json.dumps(x) + "\n" for x in lines if x["id"] != 2))
        assert subprocess.run([LINCHECK, path], capture_output=True).returncode == 1


def run_chaos(work, *args):
    env = dict(os.environ, CHAINFIRE_BIN_DIR=os.path.dirname(cluster.CHAINFIRE))
    r = subprocess.run([SCRIPT, "--work-dir", work, "chaos"] + list(args), capture_output=True,
                       text=True, timeout=400, env=env)
    runs = os.listdir(os.path.join(work, "chaos"))
    assert len(runs) == 1, r.stdout + r.stderr
    with open(os.path.join(work, "chaos", runs[0], "summary.json")) as f:
        return r, json.load(f)


def test_short_chaos_run_is_linearizable_loses_nothing_and_converges():
    with tempfile.TemporaryDirectory() as work:
        r, s = run_chaos(work, "--seconds", "30", "--seed", "11")
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert s["pass"] and s["linearizable"] and s["writes_lost"] == 0 and s["converged"]
        assert s["faults_injected"] >= 4
        assert s["operations_by_outcome"].get("get ok", 0) > 100
        assert s["acknowledged_writes"] > 100
        revisions = {m["revision"] for m in s["members"].values()}
        assert len(revisions) == 1
        # The recorded history replays to the same verdict.
        assert subprocess.run(s["replay"].split(), capture_output=True).returncode == 0


def test_unsafe_serializable_reads_under_partition_fail_the_lane():
    with tempfile.TemporaryDirectory() as work:
        r, s = run_chaos(work, "--seconds", "12", "--seed", "2", "--faults", "isolate-member",
                         "--unsafe", "serializable-reads")
        assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
        assert not s["pass"]
        assert s["linearizability_verdict"] == "violation", s
        assert s["violation_key"].startswith("chaos/")
        assert subprocess.run(s["replay"].split(), capture_output=True).returncode == 1
