"""Backups through the real tools: `etcdctl snapshot save` and `chainfire-backup` against real
members; restore into the same and into a new membership; every refusal."""
import json
import os
import shutil
import subprocess

from chainfire_harness import cluster as harness

BACKUP = os.environ.get(
    "CHAINFIRE_BACKUP_BIN",
    os.path.join(os.path.dirname(harness.CHAINFIRE), "chainfire-backup"))


def backup(*args, check=True):
    r = subprocess.run([BACKUP] + list(args), capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError("chainfire-backup %s failed: %s" % (args, r.stderr))
    return r


def all_keys(c, endpoints=None):
    """{key: (value, create, mod, version, lease)} of every key, through etcdctl."""
    r = c.etcdctl("get", "", "--prefix", "-w", "json", endpoints=endpoints)
    return harness.parse_get_json(r.stdout)


def write_data_set(c):
    c.etcdctl("put", "small", "v")
    c.etcdctl("put", "big", "x" * 100000)
    for i in range(30):
        c.etcdctl("put", "k/%02d" % i, "value-%d" % i)
    c.etcdctl("put", "k/03", "overwritten")
    c.etcdctl("del", "k/04")
    lease = c.etcdctl("lease", "grant", "600").stdout.split()[1]
    c.etcdctl("put", "leased", "l", "--lease=" + lease)
    return lease


def restore_cluster(c, file, names, token):
    """Restores `file` into a new cluster of len(names) members and returns it (not started)."""
    new = harness.Cluster(len(names), token=token, names=names)
    for m in new.members:
        backup("restore", file, "--name", m.name, "--data-dir", m.data_dir,
               "--initial-cluster", new.initial_cluster, "--initial-cluster-token", token,
               "--initial-advertise-peer-urls", m.peer_url)
    return new


def test_etcdctl_snapshot_save_writes_a_file_chainfire_backup_verifies():
    with harness.Cluster(3) as c:
        write_data_set(c)
        path = os.path.join(c.dir, "etcdctl.db")
        r = c.etcdctl("snapshot", "save", path, endpoints=c.members[1].endpoint)
        assert "Snapshot saved at" in r.stdout + r.stderr
        v = backup("verify", path)
        assert ": OK" in v.stdout
        info = json.loads(backup("inspect", path).stdout)
        assert info["keys"] == 32 and info["leases"] == 1
        assert os.path.getsize(path) % 512 == 32


def test_restore_same_and_new_membership_keeps_every_key_and_revision():
    with harness.Cluster(3) as c:
        lease = write_data_set(c)
        before = all_keys(c)
        status = c.statuses()
        source_cluster = next(iter(status.values()))["header"]["cluster_id"]
        revision = max(s["header"]["revision"] for s in status.values())
        path = os.path.join(c.dir, "b.cfb")
        out = backup("save", "--endpoints", c.endpoints, path).stdout
        assert "Snapshot saved at" in out
        info = json.loads(backup("inspect", path).stdout)
        assert info["revision"] == revision
        assert [m["name"] for m in info["source_members"]] == ["n1", "n2", "n3"]

        # The same names, URLs and token: still a new cluster ID.
        for m in c.members:
            m.kill()
        shutil.rmtree(os.path.join(c.dir, "n1"))
        shutil.rmtree(os.path.join(c.dir, "n2"))
        shutil.rmtree(os.path.join(c.dir, "n3"))
        for m in c.members:
            backup("restore", path, "--name", m.name, "--data-dir", m.data_dir,
                   "--initial-cluster", c.initial_cluster, "--initial-cluster-token", c.token,
                   "--initial-advertise-peer-urls", m.peer_url)
        for m in c.members:
            m.start()
        c.wait_for_leader()
        assert all_keys(c) == before
        st = c.statuses()
        assert all(s["header"]["revision"] == revision for s in st.values())
        assert all(s["header"]["cluster_id"] != source_cluster for s in st.values())
        # The restored lease keeps its full TTL and its key.
        r = c.etcdctl("lease", "timetolive", lease, "--keys")
        assert "leased" in r.stdout and "remaining(" in r.stdout
        # Compacted at the backup's revision, writable after it.
        r = c.etcdctl("get", "k/01", "--rev=%d" % (revision - 1), check=False)
        assert "required revision has been compacted" in r.stderr
        c.etcdctl("put", "after", "restore")
        assert all_keys(c)["after"][2] == revision + 1

    # A new static membership: other names, ports and token.
    with harness.Cluster(3) as src:
        write_data_set(src)
        before = all_keys(src)
        path = os.path.join(src.dir, "b.cfb")
        backup("save", "--endpoints", src.members[0].endpoint, path)
        new = restore_cluster(src, path, ["a", "b", "c"], "rebuilt")
        with new.started():
            assert all_keys(new) == before
            names = sorted(x[1] for x in harness.parse_member_list(
                new.etcdctl("member", "list", "-w", "json").stdout))
            assert names == ["a", "b", "c"]


def test_offline_save_from_a_stopped_member():
    with harness.Cluster(1) as c:
        write_data_set(c)
        before = all_keys(c)
        m = c.members[0]
        path = os.path.join(c.dir, "offline.cfb")
        r = backup("save", "--data-dir", m.data_dir, path, check=False)
        assert r.returncode != 0 and "still running" in r.stderr
        m.kill(harness.signal.SIGTERM)
        backup("save", "--data-dir", m.data_dir, path)
        info = json.loads(backup("inspect", path).stdout)
        assert info["keys"] == len(before)
        assert info["source_members"][0]["name"] == "n1"


def test_refusals_write_nothing():
    with harness.Cluster(1) as c:
        write_data_set(c)
        path = os.path.join(c.dir, "b.cfb")
        backup("save", "--endpoints", c.endpoints, path)
        data = open(path, "rb").read()
        target = os.path.join(c.dir, "target")
        base = ["--name", "x", "--initial-cluster", "x=http://127.0.0.1:1",
                "--initial-advertise-peer-urls", "http://127.0.0.1:1", "--data-dir", target]

        def refused(file, args, reason):
            r = backup("restore", file, *args, check=False)
            assert r.returncode != 0, r.stdout
            assert reason in r.stderr, r.stderr
            assert not os.path.exists(target) or not os.listdir(target)

        damaged = os.path.join(c.dir, "damaged.cfb")
        for offset in (0, 20, len(data) // 2, len(data) - 1):
            d = bytearray(data)
            d[offset] ^= 0x10
            open(damaged, "wb").write(bytes(d))
            refused(damaged, base, "damaged backup" if offset else "bad magic")
            assert backup("verify", damaged, check=False).returncode != 0
        truncated = os.path.join(c.dir, "truncated.cfb")
        open(truncated, "wb").write(data[:-100])
        refused(truncated, base, "truncated")
        future = os.path.join(c.dir, "future.cfb")
        d = bytearray(data)
        d[11] = 2
        open(future, "wb").write(bytes(d))
        refused(future, base, "unknown backup format version 2")
        refused(path, ["--name", "y"] + base[2:], "--name y does not appear in --initial-cluster")
        os.makedirs(target)
        open(os.path.join(target, "something"), "w").write("x")
        r = backup("restore", path, *base, check=False)
        assert r.returncode != 0 and "is not empty" in r.stderr
        assert os.listdir(target) == ["something"]


def test_member_of_a_restored_cluster_that_loses_its_disk_gets_the_restored_state():
    with harness.Cluster(3) as src:
        write_data_set(src)
        before = all_keys(src)
        path = os.path.join(src.dir, "b.cfb")
        backup("save", "--endpoints", src.endpoints, path)
        new = restore_cluster(src, path, ["a", "b", "c"], "rebuilt-disk-loss")
        with new.started():
            lost = new.members[2]
            lost.kill(harness.signal.SIGKILL)
            shutil.rmtree(lost.data_dir)
            lost.start(state="existing")
            new.wait_for_leader()
            new.etcdctl("put", "after", "loss")
            deadline = harness.time.time() + 30
            got = {}
            while harness.time.time() < deadline:
                got = harness.parse_get_json(new.etcdctl(
                    "get", "", "--prefix", "-w", "json", "--consistency=s",
                    endpoints=lost.endpoint, check=False).stdout or "{}")
                if "after" in got:
                    break
                harness.time.sleep(0.2)
            assert {k: v for k, v in got.items() if k != "after"} == before
