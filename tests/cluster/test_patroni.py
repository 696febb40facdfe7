"""Patroni 3.0 running PostgreSQL 15 in high availability with ChainFire as its etcd. Patroni
speaks etcd v3 only through the JSON gateway (leases, txns, watches), so this proves the
gateway the way its best-known user needs it. The `cluster patroni` lane runs the scenario of
chainfire_harness.patroni_lane on fresh 3-member clusters: bootstrap, replication, the leader
key's lease, a graceful failover, a ChainFire leader kill without failover, a crash failover
after the TTL with the DELETE seen by a watch, rejoins with pg_rewind; and once more with auth
on, Patroni confined to its namespace (a write outside it refused)."""
import json
import os
import subprocess
import tempfile

import pytest

from chainfire_harness import cluster
from chainfire_harness import patroni

pytestmark = pytest.mark.skipif(patroni.available() is not None,
                                reason=str(patroni.available()))

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "nix",
                      "test-cluster", "cluster")


def test_patroni_lane_fails_over_postgresql_on_chainfire_with_and_without_auth():
    with tempfile.TemporaryDirectory() as work:  # mode 0700: the lane must cope
        env = dict(os.environ, CHAINFIRE_BIN_DIR=os.path.dirname(cluster.CHAINFIRE))
        r = subprocess.run([SCRIPT, "--work-dir", work, "patroni"], capture_output=True,
                           text=True, timeout=500, env=env)
        runs = os.listdir(os.path.join(work, "patroni"))
        assert len(runs) == 1, r.stdout + r.stderr
        evidence = os.path.join(work, "patroni", runs[0])
        with open(os.path.join(evidence, "summary.json")) as f:
            summary = json.load(f)
        assert r.returncode == 0 and summary["pass"], json.dumps(summary, indent=1)
        failover = summary["runs"]["failover"]
        print("patroni failover timings:", failover)
        assert failover["graceful_failover_s"] < 20
        assert failover["crash_failover_s"] < 60
        assert summary["runs"]["auth"]["pass"]
        # Evidence kept: each Patroni node's log and each member's.
        for run in ("failover", "auth"):
            assert os.path.exists(os.path.join(evidence, run, "pg1", "patroni.log"))
            assert os.path.exists(os.path.join(evidence, run, "chainfire", "p1.log"))
