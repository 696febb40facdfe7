#!/usr/bin/python3
"""nix/test-cluster/cluster: operator lanes against real ChainFire members on loopback.

  cluster start [--members N]     start a cluster in the background (data: work/test-cluster/)
  cluster stop                    stop it (SIGTERM, bounded wait, then SIGKILL)
  cluster status                  JSON per member of the started cluster: up, leader, term,
                                  revision, applied index
  cluster durability-proof        backup, wipe, restore (same and new membership), verify;
                                  evidence under work/durability-proof/<timestamp>/
  cluster rollout-soak            rolling restarts and power-loss rounds under traffic;
                                  evidence under work/rollout-soak/<timestamp>/
  cluster chaos [--seconds S]     a register workload under a fault nemesis (kills, pauses,
        [--seed N]              power loss, partitions), checked for linearizability, lost
                                writes and convergence; evidence under work/chaos/<timestamp>/
  cluster ops-proof               the fixed-membership contract on a live cluster (also
                                  run-core-control-plane-ops-proof.sh); evidence under
                                  work/core-control-plane-ops-proof/<timestamp>/

Needs only the built binaries (build/bin, or $CHAINFIRE_BIN_DIR), python3 and etcdctl.
Exit status 0 means the lane passed.
"""
import argparse
import json
import os
import random
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chainfire_lanes as lanes  # noqa: E402
import chaos  # noqa: E402
import ops_proof  # noqa: E402
import rollout_soak  # noqa: E402


# ---- start / stop -------------------------------------------------------------------------

def state_path(work):
    return os.path.join(work, "test-cluster", "cluster.json")


def cmd_start(args):
    root = os.path.join(args.work_dir, "test-cluster")
    if os.path.exists(state_path(args.work_dir)):
        print("a cluster is already running (%s); run `cluster stop` first" %
              state_path(args.work_dir), file=sys.stderr)
        return 1
    c = lanes.LaneCluster(root, ["m%d" % (i + 1) for i in range(args.members)], "test-cluster")
    c.start(detach=True)
    lanes.write_json(state_path(args.work_dir), {
        "endpoints": c.endpoints, "initial_cluster": c.initial_cluster,
        "members": [{"name": m["name"], "pid": m["proc"].pid, "client_port": m["client"],
                     "peer_port": m["peer"], "data_dir": m["data_dir"], "log": m["log"]}
                    for m in c.members]})
    print("started %d members; endpoints %s (state in %s)" %
          (args.members, c.endpoints, state_path(args.work_dir)))
    return 0


def cmd_stop(args):
    path = state_path(args.work_dir)
    if not os.path.exists(path):
        print("no cluster is running")
        return 0
    with open(path) as f:
        state = json.load(f)
    pids = [m["pid"] for m in state["members"] if lanes.is_chainfire(m["pid"])]
    lanes.stop_pids(pids)
    os.remove(path)
    print("stopped %d members" % len(pids))
    return 0


def cmd_status(args):
    path = state_path(args.work_dir)
    if not os.path.exists(path):
        print("no cluster is running", file=sys.stderr)
        return 1
    with open(path) as f:
        state = json.load(f)
    out = []
    for m in state["members"]:
        endpoint = "127.0.0.1:%d" % m["client_port"]
        r = lanes.etcdctl(endpoint, "endpoint", "status", "-w", "json", check=False, timeout=10,
                          command_timeout="3s")
        st = lanes.parse_endpoint_status(r.stdout).get(endpoint) if r.returncode == 0 else None
        out.append(lanes.member_summary(m["name"], endpoint, lanes.is_chainfire(m["pid"]), st))
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0 if all(x["up"] for x in out) else 1


def cmd_ops_proof(args):
    stamp = lanes.run_stamp()
    result = ops_proof.run(args.work_dir, stamp, args.fault)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if result["pass"] else 1


def cmd_rollout_soak(args):
    stamp = lanes.run_stamp()
    result = rollout_soak.run(args.work_dir, args.duration, args.rounds, args.fault, args.seed,
                              stamp)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if result["pass"] else 1


def cmd_chaos(args):
    kinds = tuple(k for k in args.faults.split(",") if k)
    unknown = [k for k in kinds if k not in chaos.FAULT_KINDS]
    if unknown or not kinds:
        print("--faults: unknown fault kind(s) %s; choose from %s" %
              (",".join(unknown) or "(none)", ",".join(chaos.FAULT_KINDS)), file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    result = chaos.run(args.work_dir, args.seconds, seed, kinds, args.unsafe, lanes.run_stamp(),
                       clients=args.clients)
    brief = {k: v for k, v in result.items() if k != "faults"}
    print(json.dumps(brief, indent=2, sort_keys=True))
    return 0 if result["pass"] else 1


# ---- durability-proof ---------------------------------------------------------------------

def write_data_set(c, keys, seed):
    """Writes a known data set: mixed sizes, overwrites, deletes, keys under leases."""
    rnd = random.Random(seed)
    model = {}
    for i in range(keys):
        size = rnd.choice([0, 1, 10, 100, 1000, 10000, 60000])
        value = "".join(rnd.choice("abcdefghij") for _ in range(min(size, 64)))
        value = (value * (size // max(1, len(value)) + 1))[:size] if size else ""
        key = "proof/%05d" % i
        lanes.etcdctl(c.endpoints, "put", key, "--", value)
        model[key] = value
    for i in range(0, keys, 7):
        key = "proof/%05d" % i
        lanes.etcdctl(c.endpoints, "put", key, "--", "overwritten-%d" % i)
        model[key] = "overwritten-%d" % i
    for i in range(3, keys, 11):
        key = "proof/%05d" % i
        lanes.etcdctl(c.endpoints, "del", key)
        model.pop(key)
    leases = []
    for n in range(2):
        lease = lanes.etcdctl(c.endpoints, "lease", "grant", "3600").stdout.split()[1]
        leases.append(lease)
        for j in range(3):
            key = "leased/%d/%d" % (n, j)
            lanes.etcdctl(c.endpoints, "put", key, "l", "--lease=" + lease)
            model[key] = "l"
    return model, leases


def check_restored(c, step, expected, revision, leases, evidence):
    got = c.all_keys()
    diffs = lanes.diff_key_maps(expected, got)
    statuses = c.statuses()
    revisions = sorted({s["header"]["revision"] for s in statuses.values()})
    lease_ok = []
    for lease in leases:
        r = lanes.etcdctl(c.endpoints, "lease", "timetolive", lease, "--keys", check=False)
        lease_ok.append(r.returncode == 0 and "remaining(" in r.stdout)
    members = sorted(x[1] for x in lanes.parse_member_list(
        lanes.etcdctl(c.endpoints, "member", "list", "-w", "json").stdout))
    result = {"step": step, "keys_expected": len(expected), "keys_read": len(got),
              "differences": diffs[:20], "difference_count": len(diffs),
              "revisions": revisions, "backup_revision": revision,
              "leases_alive": lease_ok, "members": members,
              "cluster_ids": sorted({"%x" % s["header"]["cluster_id"]
                                     for s in statuses.values()})}
    result["pass"] = (not diffs and revisions == [revision] and all(lease_ok))
    lanes.write_json(os.path.join(evidence, step + ".json"), result)
    return result


def restore_into(c, backup_file):
    for m in c.members:
        lanes.backup_tool("restore", backup_file, "--name", m["name"], "--data-dir", m["data_dir"],
                          "--initial-cluster", c.initial_cluster,
                          "--initial-cluster-token", c.token,
                          "--initial-advertise-peer-urls", c.peer_url(m))


def cmd_durability_proof(args):
    stamp = lanes.run_stamp()
    evidence = os.path.join(args.work_dir, "durability-proof", stamp)
    os.makedirs(evidence)
    result = {"lane": "durability-proof", "evidence": evidence, "steps": [], "pass": False}
    clusters = []
    try:
        source = lanes.LaneCluster(os.path.join(evidence, "source"), ["d1", "d2", "d3"],
                                   "durability-" + stamp)
        clusters.append(source)
        source.start()
        model, leases = write_data_set(source, args.keys, args.seed)
        expected = source.all_keys()
        written_ok = {k: v[0].decode() for k, v in expected.items()} == model
        lanes.write_json(os.path.join(evidence, "write.json"),
                   {"step": "write", "keys": len(model), "leases": leases,
                    "read_back_matches_writes": written_ok})
        result["steps"].append("write")
        if not written_ok:
            raise RuntimeError("the source cluster does not hold what was written")

        backup_file = os.path.join(evidence, "backup.cfb")
        lanes.backup_tool("save", "--endpoints", source.endpoints, backup_file)
        lanes.backup_tool("verify", backup_file)
        inspect = json.loads(lanes.backup_tool("inspect", backup_file).stdout)
        lanes.write_json(os.path.join(evidence, "inspect.json"), inspect)
        result["steps"].append("backup")
        revision = inspect["revision"]
        source_cluster_id = inspect["source_cluster_id"]

        source.stop()
        for m in source.members:
            shutil.rmtree(m["data_dir"])
        lanes.write_json(os.path.join(evidence, "wipe.json"),
                   {"step": "wipe", "data_dirs_left": [m["data_dir"] for m in source.members
                                                       if os.path.exists(m["data_dir"])]})
        result["steps"].append("wipe")

        restore_into(source, backup_file)
        source.start()
        if args.fault == "drop-key":  # test-only: shows that a difference fails the lane
            lanes.etcdctl(source.endpoints, "del", sorted(expected)[0])
        same = check_restored(source, "restore-same-membership", expected, revision, leases,
                              evidence)
        same["pass"] = same["pass"] and source_cluster_id not in same["cluster_ids"]
        source.stop()
        result["steps"].append("restore-same-membership")

        rebuilt = lanes.LaneCluster(os.path.join(evidence, "rebuilt"), ["r1", "r2", "r3"],
                                    "rebuilt-" + stamp)
        clusters.append(rebuilt)
        restore_into(rebuilt, backup_file)
        rebuilt.start()
        new = check_restored(rebuilt, "restore-new-membership", expected, revision, leases,
                             evidence)
        new["pass"] = new["pass"] and new["members"] == ["r1", "r2", "r3"]
        rebuilt.stop()
        result["steps"].append("restore-new-membership")

        result.update({"keys": len(expected), "leases": len(leases), "backup_revision": revision,
                       "same_membership": same["pass"], "new_membership": new["pass"],
                       "pass": same["pass"] and new["pass"]})
    except Exception as e:  # the lane reports every failure in result.json
        result["error"] = str(e)
    finally:
        for c in clusters:
            c.stop()
    lanes.write_json(os.path.join(evidence, "result.json"), result)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if result["pass"] else 1


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work-dir",
                   default=os.environ.get("CHAINFIRE_WORK_DIR", os.path.join(lanes.REPO, "work")),
                   help="where clusters and evidence live (default: $CHAINFIRE_WORK_DIR, else "
                        "the repository's work/)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start", help="start a cluster in the background")
    s.add_argument("--members", type=int, default=3, choices=[1, 3, 5])
    sub.add_parser("stop", help="stop the cluster started by `start`")
    sub.add_parser("status", help="JSON per member of the cluster started by `start`")
    r = sub.add_parser("rollout-soak", help="rolling restarts and power loss under traffic")
    r.add_argument("--duration", type=float, default=60, help="seconds of traffic (at least)")
    r.add_argument("--rounds", type=int, default=4, help="single-member power-loss rounds")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--fault", choices=["none", "lying-sync"], default="none",
                   help="test-only: WAL fsyncs that lie, to show the lane catches lost writes")
    d = sub.add_parser("durability-proof", help="backup, wipe, restore, verify")
    d.add_argument("--keys", type=int, default=500, help="keys in the data set")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--fault", choices=["none", "drop-key"], default="none",
                   help="test-only: make the restored data differ, to show the lane fails")
    c = sub.add_parser("chaos", help="register workload under faults, checked for linearizability")
    c.add_argument("--seconds", type=float, default=60, help="seconds of faults under traffic")
    c.add_argument("--seed", type=int, default=None,
                   help="seeds the fault schedule (default: from the clock; printed)")
    c.add_argument("--clients", type=int, default=4)
    c.add_argument("--faults", default=",".join(chaos.FAULT_KINDS),
                   help="comma-separated fault kinds (default: all of %(default)s)")
    c.add_argument("--unsafe", choices=["serializable-reads"], default=None,
                   help="test-only: serializable reads, which a partitioned member serves stale; "
                        "the lane must then fail")
    o = sub.add_parser("ops-proof", help="the fixed-membership contract on a live cluster")
    o.add_argument("--fault", choices=["none", "wrong-membership"], default="none",
                   help="test-only: expect another membership, to show the lane fails")
    args = p.parse_args()
    handlers = {"start": cmd_start, "stop": cmd_stop, "status": cmd_status,
                "ops-proof": cmd_ops_proof, "chaos": cmd_chaos,
                "durability-proof": cmd_durability_proof, "rollout-soak": cmd_rollout_soak}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
