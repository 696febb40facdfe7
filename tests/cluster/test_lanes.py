"""The operator lanes of nix/test-cluster/cluster, run for real: each must pass on a healthy
build and fail when the restored data differs; `start`/`stop` leave no process behind."""
import json
import os
import subprocess
import tempfile

from chainfire_harness import cluster
from chainfire_harness import probes as lanes

SCRIPT = os.path.join(lanes.REPO, "nix", "test-cluster", "cluster")


def run_lane(work, *args, timeout=300):
    env = dict(os.environ, CHAINFIRE_BIN_DIR=os.path.dirname(cluster.CHAINFIRE))
    return subprocess.run([SCRIPT, "--work-dir", work] + list(args), capture_output=True,
                          text=True, timeout=timeout, env=env)


def only_result(work, lane):
    runs = os.listdir(os.path.join(work, lane))
    assert len(runs) == 1
    with open(os.path.join(work, lane, runs[0], "result.json")) as f:
        return json.load(f), os.path.join(work, lane, runs[0])


def test_durability_proof_passes_and_writes_its_evidence():
    with tempfile.TemporaryDirectory() as work:
        r = run_lane(work, "durability-proof", "--keys", "60")
        assert r.returncode == 0, r.stdout + r.stderr
        result, evidence = only_result(work, "durability-proof")
        assert result["pass"] and result["same_membership"] and result["new_membership"]
        assert result["keys"] == 60 - 6 + 6  # 6 deleted, 6 leased keys added
        inspect = json.load(open(os.path.join(evidence, "inspect.json")))
        assert inspect["revision"] == result["backup_revision"]
        assert inspect["keys"] == result["keys"]
        for step in ("restore-same-membership", "restore-new-membership"):
            s = json.load(open(os.path.join(evidence, step + ".json")))
            assert s["difference_count"] == 0 and s["keys_read"] == result["keys"]
            assert s["revisions"] == [result["backup_revision"]]


def test_durability_proof_fails_when_the_restore_differs():
    with tempfile.TemporaryDirectory() as work:
        r = run_lane(work, "durability-proof", "--keys", "20", "--fault", "drop-key")
        assert r.returncode == 1, r.stdout + r.stderr
        result, evidence = only_result(work, "durability-proof")
        assert not result["pass"] and not result["same_membership"]
        s = json.load(open(os.path.join(evidence, "restore-same-membership.json")))
        assert s["difference_count"] == 1


def test_durability_proof_and_rollout_soak_pass_on_a_tls_cluster():
    with tempfile.TemporaryDirectory() as work:
        r = run_lane(work, "durability-proof", "--keys", "30", "--tls")
        result, _ = only_result(work, "durability-proof")
        assert r.returncode == 0, json.dumps(result)[:3000]
        assert result["tls"] and result["plaintext_refused"]
        assert result["same_membership"] and result["new_membership"]
        r = run_lane(work, "rollout-soak", "--duration", "12", "--rounds", "1", "--tls",
                     timeout=400)
        result, _ = only_result(work, "rollout-soak")
        assert r.returncode == 0, json.dumps(result, indent=1)[:3000]
        assert result["tls"] and result["plaintext_refused"]
        assert result["writes_lost"] == 0 and result["converged"]
        assert result["acknowledged_writes"] > 20


def test_start_and_stop_leave_no_process_behind():
    with tempfile.TemporaryDirectory() as work:
        try:
            r = run_lane(work, "start")
            assert r.returncode == 0, r.stderr
            state = json.load(open(os.path.join(work, "test-cluster", "cluster.json")))
            pids = [m["pid"] for m in state["members"]]
            assert all(lanes.is_chainfire(p) for p in pids)
            lanes.etcdctl(state["endpoints"], "put", "lane", "up")
            assert run_lane(work, "start").returncode == 1, "a second start is refused"
        finally:
            r = run_lane(work, "stop")
        assert r.returncode == 0
        assert not any(lanes.is_chainfire(p) for p in pids)
        assert not os.path.exists(os.path.join(work, "test-cluster", "cluster.json"))


def test_status_reports_every_member_as_json():
    with tempfile.TemporaryDirectory() as work:
        try:
            assert run_lane(work, "start").returncode == 0
            r = run_lane(work, "status")
            assert r.returncode == 0, r.stderr
            members = json.loads(r.stdout)
            assert [m["name"] for m in members] == ["m1", "m2", "m3"]
            assert all(m["up"] for m in members)
            assert sum(m["leader"] for m in members) == 1
            assert len({m["term"] for m in members}) == 1
            state = json.load(open(os.path.join(work, "test-cluster", "cluster.json")))
            victim = state["members"][1]
            os.kill(victim["pid"], 9)
            r = run_lane(work, "status")
            assert r.returncode == 1
            assert [m["up"] for m in json.loads(r.stdout)] == [True, False, True]
        finally:
            run_lane(work, "stop")


def test_rollout_soak_loses_nothing_and_writes_its_evidence():
    with tempfile.TemporaryDirectory() as work:
        r = run_lane(work, "rollout-soak", "--duration", "20", "--rounds", "2", timeout=400)
        result, evidence = only_result(work, "rollout-soak")
        assert r.returncode == 0, json.dumps(result, indent=1)[:3000]
        summary = json.load(open(os.path.join(evidence, "post-control-plane-restarts.json")))
        assert summary["writes_lost"] == 0 and summary["converged"]
        assert summary["restarts_by_kind"] == {"graceful": 3, "power_loss": 2,
                                               "whole_cluster_power_loss": 1}
        assert summary["acknowledged_writes"] > 50
        assert len({(m["hash"], m["revision"]) for m in summary["members"].values()}) == 1
        puts = json.load(open(os.path.join(evidence, "chainfire-post-restart-put.json")))
        reads = json.load(open(os.path.join(evidence, "chainfire-post-restart.json")))
        assert len(puts) == len(reads) == 3 + 2 + 3
        assert all(p["ok"] for p in puts) and all(x["ok"] for x in reads)


def test_rollout_soak_with_lying_fsync_reports_lost_writes():
    with tempfile.TemporaryDirectory() as work:
        r = run_lane(work, "rollout-soak", "--duration", "10", "--rounds", "0",
                     "--fault", "lying-sync", timeout=400)
        assert r.returncode == 1, r.stdout[-2000:]
        result, _ = only_result(work, "rollout-soak")
        assert not result["pass"]
        assert result.get("writes_lost", 0) > 0 or "error" in result, result


def test_ops_proof_holds_and_fails_on_a_wrong_membership():
    with tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, CHAINFIRE_BIN_DIR=os.path.dirname(cluster.CHAINFIRE))
        r = subprocess.run([os.path.join(lanes.REPO, "nix", "test-cluster",
                                         "run-core-control-plane-ops-proof.sh"),
                            "--work-dir", work], capture_output=True, text=True, timeout=300,
                           env=env)
        result, evidence = only_result(work, "core-control-plane-ops-proof")
        assert r.returncode == 0, json.dumps(result)
        contract = json.load(open(os.path.join(evidence, "scope-fixed-contract.json")))
        assert [a["action"] for a in contract["attempts"]] == ["add", "remove", "update"]
        assert all(a["refused"] and "membership is fixed" in a["error"]
                   for a in contract["attempts"])
        assert all(x["refused"] for x in contract["refused_restarts"])
        assert len(contract["membership"]) == 3
    with tempfile.TemporaryDirectory() as work:
        r = run_lane(work, "ops-proof", "--fault", "wrong-membership")
        assert r.returncode == 1
        result, _ = only_result(work, "core-control-plane-ops-proof")
        assert not result["member_list_on_every_member_equals_boot"]


def test_nix_files_parse():
    flakes = [os.path.join(lanes.REPO, "flake.nix"),
              os.path.join(lanes.REPO, "nix", "test-cluster", "flake.nix")]
    for f in flakes:
        r = subprocess.run(["nix-instantiate", "--parse", f], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
    with tempfile.TemporaryDirectory() as d:  # a broken file does not parse
        broken = os.path.join(d, "flake.nix")
        open(broken, "w").write(open(flakes[1]).read().replace("};", "", 1))
        r = subprocess.run(["nix-instantiate", "--parse", broken], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode != 0
