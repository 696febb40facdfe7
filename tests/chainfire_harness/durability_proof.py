"""The durability-proof lane: write a known data set (overwrites, deletes, leased keys), take a
backup, wipe every member, restore into the same membership and into a new one, and check that
every key, revision and lease came back. Evidence under work/durability-proof/<timestamp>/."""
import json
import os
import random
import shutil

from chainfire_harness import probes
from chainfire_harness.cluster import Cluster, make_tls


def write_data_set(c, keys, seed):
    """Writes a known data set: mixed sizes, overwrites, deletes, keys under leases."""
    rnd = random.Random(seed)
    model = {}
    for i in range(keys):
        size = rnd.choice([0, 1, 10, 100, 1000, 10000, 60000])
        value = "".join(rnd.choice("abcdefghij") for _ in range(min(size, 64)))
        value = (value * (size // max(1, len(value)) + 1))[:size] if size else ""
        key = "proof/%05d" % i
        c.etcdctl("put", key, "--", value)
        model[key] = value
    for i in range(0, keys, 7):
        key = "proof/%05d" % i
        c.etcdctl("put", key, "--", "overwritten-%d" % i)
        model[key] = "overwritten-%d" % i
    for i in range(3, keys, 11):
        key = "proof/%05d" % i
        c.etcdctl("del", key)
        model.pop(key)
    leases = []
    for n in range(2):
        lease = c.etcdctl("lease", "grant", "3600").stdout.split()[1]
        leases.append(lease)
        for j in range(3):
            key = "leased/%d/%d" % (n, j)
            c.etcdctl("put", key, "l", "--lease=" + lease)
            model[key] = "l"
    return model, leases


def check_restored(c, step, expected, revision, leases, evidence):
    got = c.all_keys()
    diffs = probes.diff_key_maps(expected, got)
    statuses = c.statuses()
    revisions = sorted({s["header"]["revision"] for s in statuses.values()})
    lease_ok = []
    for lease in leases:
        r = c.etcdctl("lease", "timetolive", lease, "--keys", check=False)
        lease_ok.append(r.returncode == 0 and "remaining(" in r.stdout)
    members = sorted(x[1] for x in probes.parse_member_list(
        c.etcdctl("member", "list", "-w", "json").stdout))
    result = {"step": step, "keys_expected": len(expected), "keys_read": len(got),
              "differences": diffs[:20], "difference_count": len(diffs),
              "revisions": revisions, "backup_revision": revision,
              "leases_alive": lease_ok, "members": members,
              "cluster_ids": sorted({"%x" % s["header"]["cluster_id"]
                                     for s in statuses.values()})}
    result["pass"] = (not diffs and revisions == [revision] and all(lease_ok))
    probes.write_json(os.path.join(evidence, step + ".json"), result)
    return result


def restore_into(c, backup_file):
    for m in c.members:
        probes.backup_tool("restore", backup_file, "--name", m.name, "--data-dir", m.data_dir,
                          "--initial-cluster", c.initial_cluster,
                          "--initial-cluster-token", c.token,
                          "--initial-advertise-peer-urls", m.peer_url)


def run(work_dir, keys, seed, fault, stamp, tls=False):
    """Runs the lane; returns its result (also written to result.json). `tls`: every cluster
    with mutual TLS on client and peer ports (certificates made under the evidence)."""
    evidence = os.path.join(work_dir, "durability-proof", stamp)
    os.makedirs(evidence)
    result = {"lane": "durability-proof", "evidence": evidence, "steps": [], "tls": tls,
              "pass": False}
    clusters = []
    try:
        client_tls, peer_tls = make_tls(os.path.join(evidence, "pki")) if tls else (None, None)
        source = Cluster(names=["d1", "d2", "d3"], root=os.path.join(evidence, "source"),
                         token="durability-" + stamp, timing=(), client_tls=client_tls,
                         peer_tls=peer_tls)
        clusters.append(source)
        source.start()
        if tls:
            result["plaintext_refused"] = source.plaintext_refused()
            if not result["plaintext_refused"]:
                raise RuntimeError("a member of the TLS cluster served a plaintext client")
        model, leases = write_data_set(source, keys, seed)
        expected = source.all_keys()
        written_ok = {k: v[0].decode() for k, v in expected.items()} == model
        probes.write_json(os.path.join(evidence, "write.json"),
                   {"step": "write", "keys": len(model), "leases": leases,
                    "read_back_matches_writes": written_ok})
        result["steps"].append("write")
        if not written_ok:
            raise RuntimeError("the source cluster does not hold what was written")

        backup_file = os.path.join(evidence, "backup.cfb")
        probes.backup_tool("save", "--endpoints", source.endpoints, *source.client_flags(),
                           backup_file)
        probes.backup_tool("verify", backup_file)
        inspect = json.loads(probes.backup_tool("inspect", backup_file).stdout)
        probes.write_json(os.path.join(evidence, "inspect.json"), inspect)
        result["steps"].append("backup")
        revision = inspect["revision"]
        source_cluster_id = inspect["source_cluster_id"]

        source.stop()
        for m in source.members:
            shutil.rmtree(m.data_dir)
        probes.write_json(os.path.join(evidence, "wipe.json"),
                   {"step": "wipe", "data_dirs_left": [m.data_dir for m in source.members
                                                       if os.path.exists(m.data_dir)]})
        result["steps"].append("wipe")

        restore_into(source, backup_file)
        source.start()
        if fault == "drop-key":  # test-only: shows that a difference fails the lane
            source.etcdctl("del", sorted(expected)[0])
        same = check_restored(source, "restore-same-membership", expected, revision, leases,
                              evidence)
        same["pass"] = same["pass"] and source_cluster_id not in same["cluster_ids"]
        source.stop()
        result["steps"].append("restore-same-membership")

        rebuilt = Cluster(names=["r1", "r2", "r3"], root=os.path.join(evidence, "rebuilt"),
                          token="rebuilt-" + stamp, timing=(), client_tls=client_tls,
                          peer_tls=peer_tls)
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
    probes.write_json(os.path.join(evidence, "result.json"), result)
    return result
