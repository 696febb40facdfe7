"""The fixed-membership ops proof: the contract exercised on a live cluster.

MemberList on every member equals the boot membership; `etcdctl member add`, `member remove`
and `member update` are refused and MemberList is unchanged afterwards; a member restarted with
a changed --initial-cluster refuses to start; a wiped member started as `new` refuses (and
comes back through disk-loss recovery with `existing`). Evidence: result.json,
scope-fixed-contract.json and member logs under work/core-control-plane-ops-proof/<stamp>/.
"""
import os
import shutil
import signal

from chainfire_harness import probes
from chainfire_harness.cluster import Cluster


def boot_membership(cluster):
    return sorted((m.name, m.peer_url) for m in cluster.members)


def observed_membership(cluster, m):
    """(name, peer URL) pairs and IDs that member `m` reports."""
    r = probes.etcdctl(m.endpoint, "member", "list", "-w", "json")
    members = probes.parse_member_list(r.stdout)
    return sorted((x[1], x[2][0] if x[2] else "") for x in members), sorted(x[0] for x in members)


def attempt(cluster, action, args):
    r = probes.etcdctl(cluster.endpoints, "member", *args, check=False)
    return {"action": action, "command": "etcdctl member " + " ".join(args),
            "refused": r.returncode != 0, "error": (r.stderr.strip() or r.stdout.strip())[-400:]}


def run(work_dir, stamp, fault="none"):
    evidence = os.path.join(work_dir, "core-control-plane-ops-proof", stamp)
    os.makedirs(evidence)
    cluster = Cluster(names=["o1", "o2", "o3"], root=os.path.join(evidence, "cluster"),
                      token="ops-proof-" + stamp, timing=())
    result = {"lane": "core-control-plane-ops-proof", "evidence": evidence, "pass": False}
    contract = {"membership": [], "attempts": [], "refused_restarts": []}
    try:
        cluster.start()
        boot = boot_membership(cluster)
        if fault == "wrong-membership":  # test-only: shows a differing membership fails the lane
            boot = boot[:-1] + [("intruder", "http://127.0.0.1:1")]
        contract["membership"] = [{"name": n, "peer_url": u} for n, u in boot]
        # MemberList on every member equals the boot membership (names published through the
        # log may take a moment after start).
        lists = {}
        for _ in range(100):
            lists = {m.name: observed_membership(cluster, m) for m in cluster.members}
            if all(v[0] == boot for v in lists.values()):
                break
            probes.time.sleep(0.1)
        ids = {tuple(v[1]) for v in lists.values()}
        member_list_ok = all(v[0] == boot for v in lists.values()) and len(ids) == 1
        result["member_list_on_every_member_equals_boot"] = member_list_ok
        some_id = next(iter(ids))[0]
        # Live membership changes are refused, and change nothing.
        contract["attempts"] = [
            attempt(cluster, "add", ["add", "extra", "--peer-urls=http://127.0.0.1:1"]),
            attempt(cluster, "remove", ["remove", some_id]),
            attempt(cluster, "update", ["update", some_id, "--peer-urls=http://127.0.0.1:2"]),
        ]
        after = {m.name: observed_membership(cluster, m) for m in cluster.members}
        result["member_list_unchanged_after_attempts"] = after == lists
        # A restart with a changed --initial-cluster refuses to start.
        victim = cluster.members[2]
        victim.kill(signal.SIGTERM)
        changed = cluster.initial_cluster.replace(cluster.members[0].peer_url,
                                                  "http://127.0.0.1:1")
        code, out = victim.run_to_exit(initial_cluster=changed)
        contract["refused_restarts"].append({
            "case": "changed --initial-cluster", "exit_code": code,
            "refused": code not in (0, None), "error": out.strip()[-600:]})
        # A wiped member started as `new` refuses; as `existing` it recovers.
        shutil.rmtree(victim.data_dir)
        code, out = victim.run_to_exit(state="new")
        contract["refused_restarts"].append({
            "case": "wiped data dir started as new", "exit_code": code,
            "refused": code not in (0, None), "error": out.strip()[-600:]})
        victim.start(state="existing")
        cluster.wait_for_leader()
        recovered = observed_membership(cluster, victim)[0] == boot
        result["wiped_member_recovered_with_existing"] = recovered
        result["attempts_refused"] = all(a["refused"] for a in contract["attempts"])
        result["restarts_refused"] = all(r["refused"] for r in contract["refused_restarts"])
        result["pass"] = (member_list_ok and result["member_list_unchanged_after_attempts"] and
                          result["attempts_refused"] and result["restarts_refused"] and recovered)
    except Exception as e:  # noqa: BLE001 - every failure ends up in result.json
        result["error"] = str(e)
    finally:
        cluster.stop()
        probes.write_json(os.path.join(evidence, "scope-fixed-contract.json"), contract)
        probes.write_json(os.path.join(evidence, "result.json"), result)
    return result
