"""Operator lanes against real ChainFire members on loopback (nix/test-cluster/cluster, which
runs `python3 -m chainfire_harness.lanes`).

  cluster start [--members N]     start a cluster in the background (data: work/test-cluster/)
  cluster stop                    stop it (SIGTERM, bounded wait, then SIGKILL)
  cluster status                  JSON per member of the started cluster: up, leader, term,
                                  revision, applied index
  cluster durability-proof        backup, wipe, restore (same and new membership), verify;
        [--tls]                   evidence under work/durability-proof/<timestamp>/
  cluster rollout-soak            rolling restarts and power-loss rounds under traffic;
        [--tls]                   evidence under work/rollout-soak/<timestamp>/
                                  (--tls: mutual TLS on client and peer ports)
  cluster chaos [--seconds S]     a register workload under a fault nemesis (kills, pauses,
        [--seed N]              power loss, partitions), checked for linearizability, lost
                                writes and convergence; evidence under work/chaos/<timestamp>/
  cluster patroni                 Patroni 3.0 + PostgreSQL 15 on a ChainFire cluster through
                                  its JSON gateway: bootstrap, replication, failovers (SIGTERM,
                                  kill -9, a ChainFire leader kill), rejoins, and auth;
                                  evidence under work/patroni/<timestamp>/
  cluster ops-proof               the fixed-membership contract on a live cluster (also
                                  run-core-control-plane-ops-proof.sh); evidence under
                                  work/core-control-plane-ops-proof/<timestamp>/

Needs only the built binaries (build/bin, or $CHAINFIRE_BIN_DIR), python3 and etcdctl (the
patroni lane: Debian's patroni and postgresql-15 too).
Exit status 0 means the lane passed.
"""
import argparse
import json
import os
import sys
import time

from chainfire_harness import (chaos, durability_proof, ops_proof, patroni_lane, probes,
                               rollout_soak)
from chainfire_harness.cluster import Cluster


# ---- start / stop -------------------------------------------------------------------------

def state_path(work):
    return os.path.join(work, "test-cluster", "cluster.json")


def cmd_start(args):
    root = os.path.join(args.work_dir, "test-cluster")
    if os.path.exists(state_path(args.work_dir)):
        print("a cluster is already running (%s); run `cluster stop` first" %
              state_path(args.work_dir), file=sys.stderr)
        return 1
    c = Cluster(names=["m%d" % (i + 1) for i in range(args.members)], root=root,
                token="test-cluster", timing=())
    c.start(detach=True)
    probes.write_json(state_path(args.work_dir), {
        "endpoints": c.endpoints, "initial_cluster": c.initial_cluster,
        "members": [{"name": m.name, "pid": m.proc.pid, "client_port": m.client_port,
                     "peer_port": m.peer_port, "data_dir": m.data_dir, "log": m.log_path}
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
    pids = [m["pid"] for m in state["members"] if probes.is_chainfire(m["pid"])]
    probes.stop_pids(pids)
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
        r = probes.etcdctl(endpoint, "endpoint", "status", "-w", "json", check=False, timeout=10,
                          command_timeout="3s")
        st = probes.parse_endpoint_status(r.stdout).get(endpoint) if r.returncode == 0 else None
        out.append(probes.member_summary(m["name"], endpoint, probes.is_chainfire(m["pid"]), st))
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0 if all(x["up"] for x in out) else 1


def cmd_ops_proof(args):
    stamp = probes.run_stamp()
    result = ops_proof.run(args.work_dir, stamp, args.fault)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if result["pass"] else 1


def cmd_rollout_soak(args):
    stamp = probes.run_stamp()
    result = rollout_soak.run(args.work_dir, args.duration, args.rounds, args.fault, args.seed,
                              stamp, tls=args.tls)
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
    result = chaos.run(args.work_dir, args.seconds, seed, kinds, args.unsafe, probes.run_stamp(),
                       clients=args.clients)
    brief = {k: v for k, v in result.items() if k != "faults"}
    print(json.dumps(brief, indent=2, sort_keys=True))
    return 0 if result["pass"] else 1


def cmd_patroni(args):
    result = patroni_lane.run(args.work_dir, probes.run_stamp())
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if result["pass"] else 1


def cmd_durability_proof(args):
    result = durability_proof.run(args.work_dir, args.keys, args.seed, args.fault,
                                  probes.run_stamp(), tls=args.tls)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if result["pass"] else 1


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work-dir",
                   default=os.environ.get("CHAINFIRE_WORK_DIR", os.path.join(probes.REPO, "work")),
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
    r.add_argument("--tls", action="store_true",
                   help="mutual TLS on client and peer ports (certificates made by the lane)")
    d = sub.add_parser("durability-proof", help="backup, wipe, restore, verify")
    d.add_argument("--keys", type=int, default=500, help="keys in the data set")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--fault", choices=["none", "drop-key"], default="none",
                   help="test-only: make the restored data differ, to show the lane fails")
    d.add_argument("--tls", action="store_true",
                   help="mutual TLS on client and peer ports (certificates made by the lane)")
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
    sub.add_parser("patroni", help="Patroni + PostgreSQL 15 failovers on ChainFire")
    o = sub.add_parser("ops-proof", help="the fixed-membership contract on a live cluster")
    o.add_argument("--fault", choices=["none", "wrong-membership"], default="none",
                   help="test-only: expect another membership, to show the lane fails")
    args = p.parse_args()
    handlers = {"start": cmd_start, "stop": cmd_stop, "status": cmd_status,
                "ops-proof": cmd_ops_proof, "chaos": cmd_chaos,
                "durability-proof": cmd_durability_proof, "rollout-soak": cmd_rollout_soak,
                "patroni": cmd_patroni}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
