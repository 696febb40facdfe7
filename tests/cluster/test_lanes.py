"""The operator lanes of nix/test-cluster/cluster, run for real: each must pass on a healthy
build and fail when the restored data differs; `start`/`stop` leave no process behind."""
import json
import os
import subprocess
import tempfile

import cluster  # noqa: F401 (puts nix/test-cluster on the path)
import chainfire_lanes as lanes

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
