"""etcd's v3 auth on ChainFire, proven against etcd 3.4 itself: the same etcdctl script runs
against a real etcd 3.4.23 member and a ChainFire cluster and must print the same outputs and
exit codes (errors included); python-etcd3 signs in; a watch without READ is refused the way
etcd refuses it; a Txn whose other branch writes outside the user's range is refused as a
whole; a revoke is seen by a client that holds a token; tokens expire; auth survives restarts,
a leader kill and a backup restored into a new cluster."""
import os
import re
import subprocess
import tempfile
import time

import pytest

from chainfire_harness import cluster as harness
from chainfire_harness import reference

ROOT = "root:rootpw"
ALICE = "alice:alicepw"  # readwrite on the prefix /app/
CAROL = "carol:carolpw"  # read on the key /app/key1 only
BOB = "bob:bobpw"  # no role

# Where `snapshot save` writes (removed after each run).
SNAPSHOT_PATH = os.path.join(tempfile.gettempdir(), "chainfire-auth-test-%d.db" % os.getpid())

TXN = 'value("/app/a") = "1"\n\nput /app/b 2\n\nput /other x\n\n'

# (user, etcdctl arguments, stdin, how outputs compare): "exact" compares stdout, stderr's error
# lines and the exit code; "outcome" (outputs that name member IDs, sizes, ports) compares the
# error lines and the exit code.
SCRIPT = [
    (None, ["auth", "enable"], None, "exact"),  # no root user yet
    (None, ["user", "add", ROOT], None, "exact"),
    (None, ["auth", "enable"], None, "exact"),  # root lacks the root role
    (None, ["user", "grant-role", "root", "root"], None, "exact"),
    (None, ["user", "add", ROOT], None, "exact"),  # already exists
    (None, ["role", "add", ""], None, "exact"),
    (None, ["auth", "enable"], None, "exact"),
    (None, ["auth", "enable"], None, "exact"),  # already on: needs root now
    (None, ["put", "k", "v"], None, "exact"),
    (None, ["get", "k"], None, "exact"),
    ("root:wrong", ["get", "k"], None, "exact"),
    ("nobody:pw", ["get", "k"], None, "exact"),
    (ROOT, ["put", "/app/key1", "one"], None, "exact"),
    (ROOT, ["user", "add", ALICE], None, "exact"),
    (ROOT, ["user", "add", CAROL], None, "exact"),
    (ROOT, ["user", "add", BOB], None, "exact"),
    (ROOT, ["role", "add", "rw"], None, "exact"),
    (ROOT, ["role", "add", "rw"], None, "exact"),
    (ROOT, ["role", "grant-permission", "rw", "--prefix", "readwrite", "/app/"], None, "exact"),
    (ROOT, ["role", "add", "ro"], None, "exact"),
    (ROOT, ["role", "grant-permission", "ro", "read", "/app/key1"], None, "exact"),
    (ROOT, ["role", "grant-permission", "nosuchrole", "read", "/x"], None, "exact"),
    (ROOT, ["user", "grant-role", "alice", "rw"], None, "exact"),
    (ROOT, ["user", "grant-role", "carol", "ro"], None, "exact"),
    (ROOT, ["user", "grant-role", "carol", "nosuchrole"], None, "exact"),
    (ROOT, ["user", "grant-role", "nosuchuser", "ro"], None, "exact"),
    (ALICE, ["put", "/app/a", "1"], None, "exact"),
    (ALICE, ["put", "/other", "1"], None, "exact"),
    (ALICE, ["get", "/app/", "--prefix"], None, "exact"),
    (ALICE, ["get", "/", "--prefix"], None, "exact"),
    (ALICE, ["get", "", "--from-key"], None, "exact"),
    (ALICE, ["del", "/app/a", "--prev-kv"], None, "exact"),
    (ALICE, ["put", "/app/a", "1"], None, "exact"),
    (ALICE, ["txn"], TXN, "exact"),  # the failure branch writes outside /app/
    (CAROL, ["get", "/app/key1"], None, "exact"),
    (CAROL, ["get", "/app/key2"], None, "exact"),
    (CAROL, ["put", "/app/key1", "x"], None, "exact"),
    (CAROL, ["get", "/app/key", "--prefix"], None, "exact"),
    (BOB, ["get", "/app/a"], None, "exact"),
    (BOB, ["put", "/app/a", "2"], None, "exact"),
    (ALICE, ["user", "get", "alice"], None, "exact"),
    (ALICE, ["user", "get", "root"], None, "exact"),
    (ALICE, ["role", "get", "rw"], None, "exact"),
    (ALICE, ["role", "get", "ro"], None, "exact"),
    (ALICE, ["user", "list"], None, "exact"),
    (ALICE, ["role", "list"], None, "exact"),
    (ALICE, ["user", "add", "eve:evepw"], None, "exact"),
    (ALICE, ["auth", "disable"], None, "exact"),
    (ROOT, ["user", "list"], None, "exact"),
    (ROOT, ["role", "list"], None, "exact"),
    (ROOT, ["role", "get", "rw"], None, "exact"),
    (ROOT, ["role", "get", "root"], None, "exact"),
    (ROOT, ["user", "get", "carol"], None, "exact"),
    (ROOT, ["user", "get", "nosuchuser"], None, "exact"),
    (ROOT, ["user", "delete", "root"], None, "exact"),
    (ROOT, ["role", "delete", "root"], None, "exact"),
    (ROOT, ["user", "revoke-role", "root", "root"], None, "exact"),
    (ROOT, ["user", "revoke-role", "bob", "rw"], None, "exact"),
    (ROOT, ["role", "revoke-permission", "ro", "/nope"], None, "exact"),
    (ROOT, ["role", "grant-permission", "ro", "readwrite", "/app/key1"], None, "exact"),
    (CAROL, ["put", "/app/key1", "by-carol"], None, "exact"),
    (ROOT, ["role", "revoke-permission", "ro", "/app/key1"], None, "exact"),
    (CAROL, ["get", "/app/key1"], None, "exact"),
    (ROOT, ["user", "revoke-role", "alice", "rw"], None, "exact"),
    (ALICE, ["get", "/app/a"], None, "exact"),
    (ROOT, ["user", "passwd", "bob", "--interactive=false"], "newbobpw\n", "exact"),
    (BOB, ["get", "/app/a"], None, "exact"),  # the old password
    ("bob:newbobpw", ["get", "/app/a"], None, "exact"),
    (ROOT, ["role", "delete", "ro"], None, "exact"),
    (ROOT, ["user", "get", "carol"], None, "exact"),
    (ROOT, ["user", "delete", "bob"], None, "exact"),
    (ROOT, ["user", "delete", "bob"], None, "exact"),
    # Maintenance and Cluster as root, as a plain user and with no token.
] + [
    (who, args, None, "outcome")
    for who in (ROOT, CAROL, None)
    for args in (["endpoint", "status"], ["endpoint", "hashkv"], ["alarm", "list"],
                 ["defrag"], ["member", "list"], ["endpoint", "health"],
                 ["snapshot", "save", SNAPSHOT_PATH])
] + [
    # Member changes: refused for want of root before anything else (etcd would then apply
    # them; ChainFire refuses them anyway, tested in test_hostile.py).
    (who, args, None, "outcome") for who in (CAROL, None)
    for args in (["member", "remove", "1234"], ["member", "promote", "1234"],
                 ["member", "add", "x", "--peer-urls=http://127.0.0.1:1"],
                 ["member", "update", "1234", "--peer-urls=http://127.0.0.1:1"],
                 ["alarm", "disarm"])
] + [
    (None, ["auth", "disable"], None, "exact"),
    (ROOT, ["auth", "disable"], None, "exact"),
    (None, ["put", "k", "v"], None, "exact"),
    (None, ["user", "list"], None, "exact"),
]


def run_etcdctl(endpoint, user, args, stdin):
    cmd = ["etcdctl", "--endpoints=" + endpoint, "--dial-timeout=2s", "--command-timeout=10s"]
    if user:
        cmd.append("--user=" + user)
    r = subprocess.run(cmd + args, input=stdin, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, ETCDCTL_API="3"))
    return r.returncode, r.stdout, r.stderr


def normalize(code, stdout, stderr, endpoint, mode):
    """What must match between etcd and ChainFire: the exit code, stderr's error lines (without
    clientv3's retry warnings, with the endpoint replaced), and for "exact" the output."""
    errors = [re.sub(r"took = [0-9.]+[µm]?s", "took = T", l.replace(endpoint, "EP"))
              for l in stderr.splitlines() if l and not l.startswith("{")]
    out = stdout.replace(endpoint, "EP") if mode == "exact" else ""
    return code, out, errors


def test_normalize_keeps_errors_and_drops_retry_warnings():
    stderr = ('{"level":"warn","ts":"2026-12-07T04:59:17.683Z","msg":"retrying of unary '
              'invoker failed"}\nError: etcdserver: permission denied\n')
    assert normalize(1, "", stderr, "127.0.0.1:5", "exact") == (
        1, "", ["Error: etcdserver: permission denied"])
    stderr = "Failed to get the hash of endpoint 127.0.0.1:5 (etcdserver: user name is empty)\n"
    assert normalize(1, "x 127.0.0.1:5\n", stderr, "127.0.0.1:5", "outcome") == (
        1, "", ["Failed to get the hash of endpoint EP (etcdserver: user name is empty)"])
    assert normalize(0, "OK\n", "", "h:1", "exact") == (0, "OK\n", [])
    stderr = "h:1 is healthy: successfully committed proposal: took = 844.275µs\n"
    assert normalize(0, "", stderr, "h:1", "outcome") == (
        0, "", ["EP is healthy: successfully committed proposal: took = T"])


def run_script(endpoint):
    try:
        return [normalize(*run_etcdctl(endpoint, user, args, stdin), endpoint, mode)
                for user, args, stdin, mode in SCRIPT]
    finally:
        for suffix in ("", ".part"):
            if os.path.exists(SNAPSHOT_PATH + suffix):
                os.remove(SNAPSHOT_PATH + suffix)


@pytest.fixture(scope="module")
def etcd_outputs():
    if reference.etcd_binary() is None:
        pytest.skip("etcd-server is not installed")
    with reference.etcd_member() as (endpoint, _):
        return run_script(endpoint)


def test_etcdctl_script_gives_etcds_outputs_and_exit_codes(etcd_outputs):
    with harness.Cluster(3) as c:
        ours = run_script(c.members[0].endpoint)
    diffs = ["%s %s:\n  etcd: %r\n  ours: %r" % (user, " ".join(args), theirs, mine)
             for (user, args, _, _), theirs, mine in zip(SCRIPT, etcd_outputs, ours)
             if theirs != mine]
    assert not diffs, "\n".join(diffs)
    # The script exercised both outcomes.
    codes = {o[0] for o in ours}
    assert 0 in codes and 1 in codes


# ---- real clients, tokens, refusals the way etcd refuses

SETUP = [
    ["user", "add", ROOT], ["user", "grant-role", "root", "root"],
    ["user", "add", ALICE], ["role", "add", "rw"],
    ["role", "grant-permission", "rw", "--prefix", "readwrite", "/app/"],
    ["user", "grant-role", "alice", "rw"], ["auth", "enable"],
]


def setup_auth(endpoint):
    for args in SETUP:
        code, out, err = run_etcdctl(endpoint, None, args, None)
        assert code == 0, (args, err)


def api():
    from chainfire_harness.api import rpc_pb2, rpc_pb2_grpc
    return rpc_pb2, rpc_pb2_grpc


def login(endpoint, name, password, timeout=15):
    """A token for `name`; retried (bounded) while the cluster is between leaders."""
    import grpc
    pb, stubs = api()
    deadline = time.time() + timeout
    with grpc.insecure_channel(endpoint) as ch:
        while True:
            try:
                return stubs.AuthStub(ch).Authenticate(
                    pb.AuthenticateRequest(name=name, password=password), timeout=10).token
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or time.time() > deadline:
                    raise
                time.sleep(0.1)


def call(endpoint, method, request, token=None):
    """(grpc code name, details) of a unary KV call made with `token`."""
    import grpc
    _, stubs = api()
    md = [("token", token)] if token else []
    with grpc.insecure_channel(endpoint) as ch:
        try:
            getattr(stubs.KVStub(ch), method)(request, metadata=md, timeout=10)
            return "OK", ""
        except grpc.RpcError as e:
            return e.code().name, e.details()


def first_watch_response(endpoint, key, token):
    """The first response to a watch created on `key` (with range end key+"\\xff")."""
    import grpc
    pb, stubs = api()
    with grpc.insecure_channel(endpoint) as ch:
        create = pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=key.encode(), range_end=key.encode() + b"\xff"))
        stream = stubs.WatchStub(ch).Watch(iter([create]), metadata=[("token", token)],
                                           timeout=10)
        try:
            r = next(stream)
            return r.created, r.canceled, r.watch_id, r.cancel_reason
        finally:
            stream.cancel()


def refusals(endpoint):
    """What a signed-in alice gets for a watch and a Txn outside /app/ and for a write after
    her role was revoked (with the token she already holds)."""
    pb, _ = api()
    token = login(endpoint, "alice", "alicepw")
    out = {
        "watch_inside": first_watch_response(endpoint, "/app/", token)[:2],
        "watch_outside": first_watch_response(endpoint, "/other", token),
        "put_inside": call(endpoint, "Put", pb.PutRequest(key=b"/app/x", value=b"1"), token),
        "txn_else_outside": call(endpoint, "Txn", pb.TxnRequest(
            compare=[pb.Compare(key=b"/app/x", target=pb.Compare.VALUE, value=b"1")],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=b"/app/y", value=b"2"))],
            failure=[pb.RequestOp(request_put=pb.PutRequest(key=b"/other", value=b"3"))]),
            token),
        "no_token": call(endpoint, "Range", pb.RangeRequest(key=b"/app/x")),
        "bad_token": call(endpoint, "Range", pb.RangeRequest(key=b"/app/x"), "nosuchtoken.7"),
    }
    run_etcdctl(endpoint, ROOT, ["user", "revoke-role", "alice", "rw"], None)
    out["put_after_revoke"] = call(endpoint, "Put", pb.PutRequest(key=b"/app/x", value=b"2"),
                                   token)
    return out


def test_watch_txn_revoke_and_token_refusals_match_etcd():
    if reference.etcd_binary() is None:
        pytest.skip("etcd-server is not installed")
    with reference.etcd_member() as (endpoint, _):
        setup_auth(endpoint)
        theirs = refusals(endpoint)
    with harness.Cluster(3) as c:
        setup_auth(c.members[0].endpoint)
        ours = refusals(c.members[1].endpoint)  # tokens work on every member
    assert ours == theirs
    assert ours["watch_inside"] == (True, False)
    assert ours["watch_outside"][1] and "permission denied" in ours["watch_outside"][3]
    assert ours["put_inside"] == ("OK", "")
    assert ours["put_after_revoke"] == ("PERMISSION_DENIED", "etcdserver: permission denied")


def test_python_etcd3_signs_in_and_a_client_certificate_names_its_user(tmp_path):
    # python-etcd3 sends its token as call credentials, which gRPC sends over TLS only.
    client_tls, _ = harness.make_tls(str(tmp_path / "pki"))
    with harness.Cluster(3, client_tls=client_tls) as c:
        # Auth is off until the last step: no --user needed.
        for args in SETUP[:-1] + [["user", "add", "client", "--no-password"],
                                  ["user", "grant-role", "client", "rw"], SETUP[-1]]:
            c.etcdctl(*args)
        with harness.etcd_client(c.members[2].client_port, user="alice", password="alicepw",
                                 **c.etcd3_kwargs()) as client:
            client.put("/app/py", "v")
            assert client.get("/app/py")[0] == b"v"
            with pytest.raises(Exception) as denied:
                client.put("/elsewhere", "v")
            assert "permission denied" in str(denied.value)
        with pytest.raises(Exception) as failed:
            with harness.etcd_client(c.members[2].client_port, user="alice", password="no",
                                     **c.etcd3_kwargs()):
                pass
        assert "authentication failed" in str(failed.value)
        # --client-cert-auth: with no token, the verified certificate's CN ("client") is the
        # user, as etcd; a --no-password user cannot sign in with a password.
        c.etcdctl("put", "/app/by-cert", "1")
        r = c.etcdctl("put", "/elsewhere", "1", check=False)
        assert r.returncode != 0 and "permission denied" in r.stderr
        r = c.etcdctl("--user", "client:x", "get", "/app/by-cert", check=False)
        assert r.returncode != 0 and "authentication failed" in r.stderr


def expiry(endpoint):
    pb, _ = api()
    token = login(endpoint, "alice", "alicepw")
    fresh = call(endpoint, "Range", pb.RangeRequest(key=b"/app/x"), token)
    # The token lives 2 s without use (etcd's TTL is checked once a second): 4 s is past it.
    time.sleep(4)
    return fresh, call(endpoint, "Range", pb.RangeRequest(key=b"/app/x"), token)


def test_tokens_expire_after_the_ttl_as_etcds():
    if reference.etcd_binary() is None:
        pytest.skip("etcd-server is not installed")
    with reference.etcd_member("--auth-token-ttl", "2") as (endpoint, _):
        setup_auth(endpoint)
        theirs = expiry(endpoint)
    with harness.Cluster(1, extra=["--auth-token-ttl", "2"]) as c:
        setup_auth(c.members[0].endpoint)
        ours = expiry(c.members[0].endpoint)
    assert ours == theirs == (("OK", ""), ("UNAUTHENTICATED", "etcdserver: invalid auth token"))


# ---- auth is replicated state: restarts, a leader kill, a snapshot install, a restore

SNAPSHOT_FLAGS = ["--snapshot-count", "50", "--experimental-snapshot-catchup-entries", "10"]
BACKUP = os.path.join(os.path.dirname(harness.CHAINFIRE), "chainfire-backup")


def backup_tool(*args):
    return subprocess.run([BACKUP] + list(args), capture_output=True, text=True, timeout=120)


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out waiting for " + what
        time.sleep(0.1)


def settled(endpoint, method, request, token=None, timeout=15):
    """call(), retried while the cluster is between leaders (UNAVAILABLE), bounded."""
    deadline = time.time() + timeout
    while True:
        got = call(endpoint, method, request, token)
        if got[0] != "UNAVAILABLE" or time.time() > deadline:
            return got
        time.sleep(0.1)


def alice_sees_her_keys_only(endpoint):
    pb, _ = api()
    token = login(endpoint, "alice", "alicepw")
    assert settled(endpoint, "Range", pb.RangeRequest(key=b"/app/k1", serializable=True),
                   token) == ("OK", "")
    assert settled(endpoint, "Put", pb.PutRequest(key=b"/other", value=b"x"), token)[0] == \
        "PERMISSION_DENIED"
    return token


def test_auth_survives_restarts_a_leader_kill_a_snapshot_install_and_a_restore(tmp_path):
    pb, _ = api()
    with harness.Cluster(3, extra=SNAPSHOT_FLAGS) as c:
        setup_auth(c.members[0].endpoint)
        # A follower misses enough entries to need a snapshot, which must carry the auth store.
        lagging = c.members[2]
        lagging.kill()
        root = login(c.members[0].endpoint, "root", "rootpw")
        for i in range(150):
            assert call(c.members[0].endpoint, "Put",
                        pb.PutRequest(key=b"/app/k%d" % i, value=b"v"), root) == ("OK", "")
        lagging.start()
        wait_for(lambda: "installed the snapshot" in lagging.log(), 30, "the snapshot install")
        alice_sees_her_keys_only(lagging.endpoint)
        # The leader dies: the survivors still enforce auth.
        leader = c.leader_member()
        leader.kill()
        survivors = [m for m in c.members if m.alive()]
        c.wait_for_leader(survivors)
        assert settled(survivors[0].endpoint, "Put", pb.PutRequest(key=b"/app/x", value=b"1")) \
            == ("INVALID_ARGUMENT", "etcdserver: user name is empty")
        alice_sees_her_keys_only(survivors[0].endpoint)
        # Every member restarts: auth is still on; tokens were not state and are gone.
        token = login(survivors[0].endpoint, "alice", "alicepw")
        c.stop()
        for m in c.members:
            m.start()
        c.wait_for_leader()
        # (on the members that had the token before the restart; the one that was down then
        # learns it as it catches up, as any member that missed it would)
        for m in survivors:
            assert settled(m.endpoint, "Range", pb.RangeRequest(key=b"/app/k1"), token) == \
                ("UNAUTHENTICATED", "etcdserver: invalid auth token"), m.name
        alice_sees_her_keys_only(c.members[0].endpoint)
        # A backup needs root; restored into a new cluster, users, roles and auth stay.
        path = str(tmp_path / "auth.db")
        refused = backup_tool("save", "--endpoints", c.members[0].endpoint, path)
        assert refused.returncode != 0 and "user name is empty" in refused.stderr
        saved = backup_tool("save", "--endpoints", c.members[0].endpoint, "--user", ROOT, path)
        assert saved.returncode == 0, saved.stderr
    new = harness.Cluster(3, names=["r1", "r2", "r3"], token="restored-auth-%d" % os.getpid())
    for m in new.members:
        r = backup_tool("restore", path, "--name", m.name, "--data-dir", m.data_dir,
                        "--initial-cluster", new.initial_cluster, "--initial-cluster-token",
                        new.token, "--initial-advertise-peer-urls", m.peer_url)
        assert r.returncode == 0, r.stderr
    with new.started():
        endpoint = new.members[1].endpoint
        assert settled(endpoint, "Put", pb.PutRequest(key=b"/app/x", value=b"1")) == \
            ("INVALID_ARGUMENT", "etcdserver: user name is empty")
        alice_sees_her_keys_only(endpoint)
        code, out, _ = run_etcdctl(endpoint, ROOT, ["user", "list"], None)
        assert code == 0 and out.split() == ["alice", "root"]


# ---- hostile input and a login storm

def auth_call(endpoint, method, request, token=None):
    import grpc
    _, stubs = api()
    md = [("token", token)] if token else []
    with grpc.insecure_channel(endpoint, options=[("grpc.max_send_message_length", 64 << 20)]) \
            as ch:
        try:
            getattr(stubs.AuthStub(ch), method)(request, metadata=md, timeout=20)
            return "OK", ""
        except grpc.RpcError as e:
            return e.code().name, e.details()


def test_bad_auth_requests_get_etcds_errors_and_the_member_keeps_serving():
    pb, _ = api()
    with harness.Cluster(3) as c:
        ep = c.members[1].endpoint
        setup_auth(c.members[0].endpoint)
        root = login(ep, "root", "rootpw")
        huge = "u" * (1600 << 10)  # over --max-request-bytes (1.5 MiB), under gRPC's limit
        for method, request in [
                ("UserAdd", pb.AuthUserAddRequest(name=huge, password="x")),
                ("RoleAdd", pb.AuthRoleAddRequest(name=huge)),
                ("Authenticate", pb.AuthenticateRequest(name=huge, password="x")),
                ("UserChangePassword", pb.AuthUserChangePasswordRequest(name="alice",
                                                                        password=huge))]:
            assert auth_call(ep, method, request, root) == (
                "INVALID_ARGUMENT", "etcdserver: request is too large"), method
        assert auth_call(ep, "UserAdd", pb.AuthUserAddRequest(name="", password="x"), root) == (
            "INVALID_ARGUMENT", "etcdserver: user name is empty")
        assert auth_call(ep, "RoleAdd", pb.AuthRoleAddRequest(name=""), root) == (
            "INVALID_ARGUMENT", "etcdserver: role name is empty")
        assert auth_call(ep, "UserGrantRole", pb.AuthUserGrantRoleRequest(
            user="alice", role="nosuch"), root) == (
            "FAILED_PRECONDITION", "etcdserver: role name not found")
        from chainfire_harness.api import auth_pb2
        assert auth_call(ep, "RoleGrantPermission", pb.AuthRoleGrantPermissionRequest(
            name="nosuch", perm=auth_pb2.Permission(key=b"a")), root) == (
            "FAILED_PRECONDITION", "etcdserver: role name not found")
        for token in ["", "x", "abc.1", "abc.99999999", "a" * 5000, "a.b.c", "..."]:
            assert call(ep, "Range", pb.RangeRequest(key=b"/app/k"), token or "e.0") == (
                "UNAUTHENTICATED", "etcdserver: invalid auth token"), token
        # Names with any bytes are just names.
        odd = "r\u00f4le/\u0000x"
        assert auth_call(ep, "RoleAdd", pb.AuthRoleAddRequest(name=odd), root) == ("OK", "")
        code, out, _ = run_etcdctl(ep, ROOT, ["role", "list"], None)
        assert code == 0 and "rw" in out.split()
        assert call(ep, "Put", pb.PutRequest(key=b"/app/k", value=b"v"), root) == ("OK", "")


def test_a_login_storm_neither_stalls_writes_nor_moves_leadership():
    import concurrent.futures
    pb, _ = api()
    with harness.Cluster(3) as c:
        setup_auth(c.members[0].endpoint)
        leader = c.leader_member()
        term = leader.status()["header"]["raft_term"]
        target = leader.endpoint  # the storm and the writes share the leader's CPU
        root = login(target, "root", "rootpw")

        def write_for(seconds):
            done, failed, deadline = 0, [], time.time() + seconds
            while time.time() < deadline:
                got = call(target, "Put", pb.PutRequest(key=b"/app/w", value=b"v"), root)
                if got == ("OK", ""):
                    done += 1
                else:
                    failed.append(got)
            return done, failed

        quiet, failed = write_for(3)
        assert not failed and quiet > 0
        stop = time.time() + 4
        outcomes = {}

        def storm(i):
            import grpc
            _, stubs = api()
            with grpc.insecure_channel(target) as ch:
                auth = stubs.AuthStub(ch)
                while time.time() < stop:
                    try:
                        auth.Authenticate(pb.AuthenticateRequest(name="alice", password="bad%d" % i),
                                          timeout=10)
                        outcomes["OK"] = outcomes.get("OK", 0) + 1
                    except grpc.RpcError as e:
                        outcomes[e.details()] = outcomes.get(e.details(), 0) + 1

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for i in range(8):
                pool.submit(storm, i)
            stormy, failed = write_for(4)
        assert not failed, failed
        assert "OK" not in outcomes
        # Past a few failures the member refuses at once instead of hashing every guess.
        assert outcomes.get("etcdserver: too many requests", 0) > \
            outcomes.get("etcdserver: authentication failed, invalid user ID or password", 0)
        print("login storm: %d writes in 3 s before, %d in 4 s during; answers %s" %
              (quiet, stormy, outcomes))
        assert stormy >= quiet * 0.3, (quiet, stormy, outcomes)
        assert c.leader_member() is leader and leader.status()["header"]["raft_term"] == term
        assert "auth: refused login from user 'alice' at ipv4:127.0.0.1:" in leader.log()
        assert "bad0" not in leader.log()  # never a password in the log


def jwt_option(directory, method="RS256"):
    """etcd's --auth-token value for a fresh key pair made with openssl under `directory`."""
    key, pub = os.path.join(directory, "jwt.key"), os.path.join(directory, "jwt.pub")
    if method.startswith("ES"):
        gen = ["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", key]
    else:
        gen = ["openssl", "genrsa", "-out", key, "2048"]
    subprocess.run(gen, check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True,
                   capture_output=True, timeout=60)
    return "jwt,pub-key=%s,priv-key=%s,sign-method=%s" % (pub, key, method)


def test_jwt_tokens_behave_as_etcds(tmp_path):
    if reference.etcd_binary() is None:
        pytest.skip("etcd-server is not installed")
    option = jwt_option(str(tmp_path))
    with reference.etcd_member("--auth-token", option) as (endpoint, _):
        setup_auth(endpoint)
        theirs = refusals(endpoint)
    with harness.Cluster(3, extra=["--auth-token", option]) as c:
        setup_auth(c.members[0].endpoint)
        ours = refusals(c.members[2].endpoint)
        # Stateless: a token signed by one member is good on another, and its revision makes it
        # old after any auth change (unlike a simple token).
        token = login(c.members[0].endpoint, "root", "rootpw")
        assert token.count(".") == 2
        pb, _ = api()
        assert call(c.members[1].endpoint, "Range", pb.RangeRequest(key=b"/x"), token) == \
            ("OK", "")
        run_etcdctl(c.members[0].endpoint, ROOT, ["role", "add", "another"], None)
        assert settled(c.members[1].endpoint, "Range", pb.RangeRequest(key=b"/x"), token) == \
            ("INVALID_ARGUMENT", "etcdserver: revision of auth store is old")
    assert ours == theirs
    assert ours["put_after_revoke"] == ("INVALID_ARGUMENT",
                                        "etcdserver: revision of auth store is old")


def test_bad_jwt_options_refuse_to_start(tmp_path):
    option = jwt_option(str(tmp_path))
    c = harness.Cluster(1)
    try:
        for bad, message in [
                (option.replace("RS256", "XX999"), "auth: invalid auth signature method"),
                ("jwt,sign-method=RS256", "auth: missing key data"),
                (option.replace("jwt.pub", "nosuch.pub"), "cannot read the JWT key file"),
                ("jwt,oops", "auth: invalid auth options")]:
            code, out = c.members[0].run_to_exit(extra=["--auth-token", bad])
            assert code == 1 and message in out, (bad, out)
    finally:
        c.__exit__(None, None, None)


def test_passwords_and_tokens_never_reach_the_raft_log_or_the_member_logs():
    secret = "pw-%d-zq7" % os.getpid()
    marker = "value-%d-zq7" % os.getpid()
    with harness.Cluster(3) as c:
        ep = c.members[0].endpoint
        setup_auth(ep)
        assert run_etcdctl(ep, ROOT, ["user", "add", "dave:" + secret], None)[0] == 0
        assert run_etcdctl(ep, ROOT, ["put", "/app/marker", marker], None)[0] == 0
        token = login(c.members[1].endpoint, "dave", secret)
        assert run_etcdctl(ep, "dave:wrong-" + secret, ["get", "/x"], None)[0] != 0
        logs = [m.log() for m in c.members]
        c.stop()

        def found(needle):
            hits = []
            for m in c.members:
                for root, _, files in os.walk(m.data_dir):
                    for f in files:
                        with open(os.path.join(root, f), "rb") as fh:
                            if needle.encode() in fh.read():
                                hits.append(os.path.join(root, f))
            return hits
        # The search sees what the log holds (the value written next to the user add) ...
        assert found(marker)
        # ... and no password, in clear, anywhere in a data dir or a member's log; nor a usable
        # token (the log holds the digest of its random part).
        assert not found(secret)
        assert not found(token.split(".")[0])
        assert not any(secret in log for log in logs)
        assert "auth: user add by user 'root'" in "".join(logs)


def lease_with_a_secret_key(endpoint):
    code, out, err = run_etcdctl(endpoint, ROOT, ["lease", "grant", "600"], None)
    assert code == 0, err
    lease = out.split()[1]
    assert run_etcdctl(endpoint, ROOT, ["put", "/secret/k", "v", "--lease=" + lease], None)[0] == 0
    return lease


def test_listing_a_leases_keys_needs_read_on_them():
    # A deliberate difference: etcd 3.4.23 lists them to anyone (CVE-2023-32082, fixed in
    # 3.4.26); ChainFire checks, on the member the call reaches, before forwarding it.
    if reference.etcd_binary() is not None:
        with reference.etcd_member() as (endpoint, _):
            setup_auth(endpoint)
            lease = lease_with_a_secret_key(endpoint)
            code, out, _ = run_etcdctl(endpoint, ALICE, ["lease", "timetolive", lease, "--keys"],
                                       None)
            assert code == 0 and "/secret/k" in out  # the leak, in etcd 3.4.23
    with harness.Cluster(3) as c:
        ep = c.members[0].endpoint
        setup_auth(ep)
        lease = lease_with_a_secret_key(ep)
        follower = next(m for m in c.members if m is not c.leader_member())
        code, out, err = run_etcdctl(follower.endpoint, ALICE,
                                     ["lease", "timetolive", lease, "--keys"], None)
        assert code != 0 and "permission denied" in err
        code, out, err = run_etcdctl(follower.endpoint, ALICE, ["lease", "timetolive", lease],
                                     None)
        assert code == 0 and "granted with TTL(600s)" in out
        code, out, err = run_etcdctl(follower.endpoint, ROOT,
                                     ["lease", "timetolive", lease, "--keys"], None)
        assert code == 0 and "/secret/k" in out
