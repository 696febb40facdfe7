"""etcd's v3 JSON gateway on ChainFire's client port, proven against etcd 3.4.23 itself: the
same JSON requests (errors, txn forms, enums as names and numbers, big lease IDs, streams,
auth) go to a real etcd member and to ChainFire, and the answers (HTTP status and decoded
body, with cluster-specific values masked) must be equal. Plus etcd3gw, the OpenStack client
that speaks only the gateway; gRPC and HTTP/1.1 on one port; and hostile HTTP input."""
import base64
import json
import os
import re
import socket
import threading
import time

import pytest

from chainfire_harness import cluster as harness
from chainfire_harness import gateway as gw
from chainfire_harness import probes
from chainfire_harness import reference

ETCD_RPC_PROTO = "/usr/share/gocode/src/go.etcd.io/etcd/etcdserver/etcdserverpb/rpc.proto"


def b64(s):
    return base64.b64encode(s.encode()).decode()


BIG_LEASE = "7587869999999999999"  # above 2**53: must parse exactly (and is not granted)

# (gateway path, body) in order; each answer is compared. Bodies are dicts or raw text.
SCRIPT = [
    ("kv/put", {"key": b64("a"), "value": b64("1")}),
    ("kv/put", {"key": b64("a"), "value": b64("2"), "prev_kv": True}),
    ("kv/put", {"key": b64("b"), "value": b64("3")}),
    ("kv/put", {"key": b64("c"), "value": b64("4"), "unknown_field": 7}),
    ("kv/range", {"key": b64("a")}),
    ("kv/range", {"key": b64("a"), "range_end": b64("z")}),
    ("kv/range", {"key": b64("a"), "range_end": b64("z"), "limit": 2}),
    ("kv/range", {"key": b64("a"), "range_end": b64("z"), "limit": "2"}),
    ("kv/range", {"key": b64("a"), "range_end": b64("z"), "sort_order": "DESCEND"}),
    ("kv/range", {"key": b64("a"), "range_end": b64("z"), "sort_order": 2, "sort_target": 0}),
    ("kv/range", {"key": b64("a"), "range_end": b64("z"), "count_only": True}),
    ("kv/range", {"key": b64("a"), "range_end": b64("z"), "keys_only": True}),
    ("kv/range", {"key": b64("a"), "revision": 2}),
    ("kv/range", {"key": b64("a"), "revision": 1000}),  # future revision: OutOfRange
    ("kv/range", {"key": b64("nothing")}),
    ("kv/range", {}),  # key is not provided
    ("kv/range", ""),  # an empty body is {}
    ("kv/put", {"key": b64("x"), "value": b64("y"), "lease": BIG_LEASE}),
    ("kv/put", {"key": b64("x"), "value": b64("y"), "lease": int(BIG_LEASE)}),
    ("kv/put", {"key": b64("x"), "value": b64("y"), "ignore_value": True}),
    # Txn: compare forms (result and target as names, numbers and left out), both branches.
    ("kv/txn", {"compare": [{"key": b64("a"), "target": "VALUE", "value": b64("2")}],
                "success": [{"request_put": {"key": b64("t1"), "value": b64("s")}}],
                "failure": [{"request_put": {"key": b64("t1"), "value": b64("f")}}]}),
    ("kv/txn", {"compare": [{"key": b64("a"), "result": "EQUAL", "target": "VALUE",
                             "value": b64("nope")}],
                "success": [{"request_put": {"key": b64("t2"), "value": b64("s")}}],
                "failure": [{"request_range": {"key": b64("a")}}]}),
    ("kv/txn", {"compare": [{"key": b64("a"), "result": 1, "target": 1, "version": "0"}],
                "success": [{"request_delete_range": {"key": b64("t1"), "prev_kv": True}}]}),
    ("kv/txn", {"compare": [{"key": b64("a"), "result": "LESS", "target": "MOD",
                             "mod_revision": 100}]}),
    ("kv/txn", {"compare": [{"key": b64("nokey"), "target": "CREATE", "create_revision": 0}],
                "success": [{"request_put": {"key": b64("nokey"), "value": b64("v")}},
                            {"request_range": {"key": b64("nokey")}}]}),
    ("kv/txn", {"success": [{"request_put": {"key": b64("d"), "value": b64("1")}},
                            {"request_put": {"key": b64("d"), "value": b64("2")}}]}),
    ("kv/txn", {"compare": [{"key": b64("a"), "target": "NOPE"}]}),
    ("kv/deleterange", {"key": b64("b"), "prev_kv": True}),
    ("kv/deleterange", {"key": b64("nothing")}),
    # Leases (their IDs differ between clusters: masked).
    ("lease/grant", {"TTL": 60}),
    ("lease/grant", {"TTL": "30", "ID": "12345"}),
    ("lease/grant", {"TTL": 30, "ID": 12345}),  # already exists
    ("lease/timetolive", {"ID": "12345", "keys": True}),
    ("kv/lease/timetolive", {"ID": 12345}),
    ("kv/put", {"key": b64("leased"), "value": b64("v"), "lease": 12345}),
    ("lease/timetolive", {"ID": 12345, "keys": True}),
    ("lease/leases", {}),
    ("kv/lease/leases", ""),
    ("lease/revoke", {"ID": 12345}),
    ("kv/lease/revoke", {"ID": 12345}),  # not found any more
    ("lease/revoke", {"ID": BIG_LEASE}),
    ("lease/timetolive", {"ID": BIG_LEASE}),
    ("kv/range", {"key": b64("leased")}),
    # Compaction, then a read below it.
    ("kv/compaction", {"revision": 3}),
    ("kv/compaction", {"revision": 3}),
    ("kv/range", {"key": b64("a"), "revision": 2}),
    ("kv/compaction", {"revision": 100000}),
    # Maintenance and Cluster.
    ("maintenance/status", {}),
    ("maintenance/alarm", {"action": "GET"}),
    ("maintenance/alarm", {"action": 0}),
    ("maintenance/hash", {}),
    ("maintenance/defragment", {}),
    ("cluster/member/list", {}),
    # Bad input.
    ("kv/range", "{not json"),
    ("kv/range", {"key": 5}),
    ("kv/range", {"limit": "many"}),
    ("kv/range", "[1,2]"),
    ("kv/put", {"key": b64("a"), "value": "!!!not base64"}),
    ("nosuch/path", {}),
    ("kv", {}),
]


def decode_error_only(answer):
    """What is compared of a request that the two JSON decoders refuse (Go's and protobuf's
    messages differ in their words): the code. etcd's own errors start with "etcdserver:"."""
    if isinstance(answer, dict) and answer.get("code") == 3 and not answer.get(
            "message", "").startswith("etcdserver:"):
        return {"code": 3, "message": "<json decoding error>"}
    return answer


def run_script(endpoint):
    g = gw.Gateway(endpoint)
    out = []
    try:
        for path, body in SCRIPT:
            status, answer = g.post(path, body)
            out.append((path, status, decode_error_only(gw.mask(answer))))
    finally:
        g.close()
    return out


@pytest.fixture(scope="module")
def etcd():
    if reference.etcd_binary() is None:
        pytest.skip("etcd-server is not installed")
    with reference.etcd_member() as (endpoint, _):
        yield endpoint


def test_every_gateway_request_answers_as_etcd_3_4_does(etcd):
    with harness.Cluster(1) as c:
        ours = run_script(c.members[0].endpoint)
    with reference.etcd_member() as (fresh_etcd, _):
        theirs = run_script(fresh_etcd)
    mismatches = [(s, o, t) for s, o, t in zip(SCRIPT, ours, theirs) if o != t]
    assert not mismatches, "\n".join("%s %s\n  chainfire: %s\n  etcd:      %s" % (
        s[0], json.dumps(s[1])[:120], o[1:], t[1:]) for s, o, t in mismatches)
    # The script did reach the interesting answers (not only errors).
    statuses = [o[1] for o in ours]
    assert statuses.count(200) >= 35 and {400, 404, 405} & set(statuses) >= {400, 404}


def etcd_gateway_paths():
    """The POST paths of etcd 3.4.23's rpc.proto (google.api.http options)."""
    with open(ETCD_RPC_PROTO) as f:
        return sorted(set(re.findall(r'post:\s*"/v3/([^"]+)"', f.read())))


def test_every_path_of_etcds_gateway_is_served_and_methods_and_prefixes_match(etcd):
    if not os.path.exists(ETCD_RPC_PROTO):
        pytest.skip("golang-etcd-server-dev is not installed")
    paths = etcd_gateway_paths()
    assert len(paths) >= 40, paths  # the reader did find them
    skip = {"cluster/member/add", "cluster/member/remove", "cluster/member/update",
            "cluster/member/promote",  # refused by ChainFire (fixed membership): see below
            "auth/enable", "auth/disable", "maintenance/snapshot", "watch", "lease/keepalive",
            "maintenance/transfer-leadership",
            # Compaction at revision 0 before any compaction: etcd 3.4 accepts it once (its
            # "no compaction yet" is -1); ChainFire refuses it as already compacted.
            "kv/compaction"}
    with harness.Cluster(1) as c:
        ours = gw.Gateway(c.members[0].endpoint)
        theirs = gw.Gateway(etcd)
        for path in paths:
            ours_get = ours.request("GET", "/v3/" + path)[0]
            theirs_get = theirs.request("GET", "/v3/" + path)[0]
            assert (path, ours_get) == (path, theirs_get) == (path, 405)
            if path in skip:
                continue
            # An empty request: the same status and error (or answer shape) on both.
            o = ours.post(path, {})
            t = theirs.post(path, {})
            assert o[0] == t[0], (path, o, t)
            assert type(o[1]) is type(t[1]), (path, o, t)
            if isinstance(o[1], dict) and "code" in o[1]:
                assert o[1] == t[1], (path, o, t)
        for prefix, expected in (("/v3beta/", 200), ("/v3alpha/", 404)):
            for g in (ours, theirs):
                status, _, _ = g.request("POST", prefix + "kv/range",
                                         body=json.dumps({"key": b64("a")}))
                assert status == expected, (prefix, status)
        # Membership is fixed: a change through the gateway is refused as through gRPC.
        status, answer = ours.post("cluster/member/add", {"peerURLs": ["http://127.0.0.1:1"]})
        assert status != 200 and "membership" in answer["message"], answer
        status, answer = ours.post("cluster/member/list", {})
        assert status == 200 and len(answer["members"]) == 1
        ours.close()
        theirs.close()


def watch_script(endpoint):
    """A watch from revision 1 of a key written 3 times, a prefix watch, and a watch whose
    start revision was compacted away (answered, then the stream ends)."""
    g = gw.Gateway(endpoint)
    for v in ("1", "2", "3"):
        g.call("kv/put", {"key": b64("w/k"), "value": b64(v)})
    out = []
    status, objects = g.stream("watch", {"create_request": {"key": b64("w/k"),
                                                             "start_revision": 1}}, count=4)
    out.append((status, gw.mask(objects)))
    status, objects = g.stream("watch", {"create_request": {
        "key": b64("w/"), "range_end": b64("w0"), "start_revision": 2, "prev_kv": True,
        "filters": ["NODELETE"]}}, count=3)
    out.append((status, gw.mask(objects)))
    g.call("kv/compaction", {"revision": 3})
    status, objects = g.stream("watch", {"create_request": {"key": b64("w/k"),
                                                             "start_revision": 2}}, timeout=10)
    out.append((status, gw.mask(objects)))
    # Keepalive of a lease that does not exist: one answer, then the reply ends.
    status, objects = g.stream("lease/keepalive", {"ID": 999}, timeout=10)
    out.append((status, gw.mask(objects)))
    lease = g.call("lease/grant", {"TTL": 60})["ID"]
    status, objects = g.stream("lease/keepalive", {"ID": lease}, timeout=10)
    out.append((status, gw.mask(objects)))
    # Two requests in one body: both watchers are created.
    body = json.dumps({"create_request": {"key": b64("w/k")}}) + "\n" + json.dumps(
        {"create_request": {"key": b64("w/other")}})
    status, objects = g.stream("watch", body, count=2)
    out.append((status, [sorted(o["result"].keys()) for o in objects]))
    g.close()
    return out


def test_watch_and_keepalive_streams_answer_as_etcds(etcd):
    with harness.Cluster(1) as c:
        ours = watch_script(c.members[0].endpoint)
    with reference.etcd_member() as (fresh_etcd, _):
        theirs = watch_script(fresh_etcd)
    for o, t in zip(ours, theirs):
        assert o == t, "chainfire: %s\netcd:      %s" % (o, t)
    # The compacted watch did end by itself (not by the test's timeout), with the cancel.
    compacted = ours[2][1]
    assert compacted[-1]["result"]["canceled"] is True
    assert compacted[-1]["result"]["compact_revision"] == "3"


def test_snapshot_streams_a_database_that_the_backup_tool_can_read():
    with harness.Cluster(1) as c:
        g = gw.Gateway(c.members[0].endpoint)
        g.call("kv/put", {"key": b64("snap"), "value": b64("shot")})
        status, objects = g.stream("maintenance/snapshot", {}, timeout=30)
        assert status == 200 and objects
        blob = b"".join(base64.b64decode(o["result"].get("blob", "")) for o in objects)
        assert objects[-1]["result"].get("remaining_bytes") in (None, "0")
        assert len(blob) > 100 and b"shot" in blob
        g.close()


def test_auth_through_the_gateway_is_enforced_as_on_grpc_and_as_etcds(etcd):
    def script(endpoint):
        g = gw.Gateway(endpoint)
        out = []

        def step(path, body, token=None):
            headers = {"Authorization": token} if token else None
            status, answer = g.post(path, body, headers=headers)
            out.append((path, status, gw.mask(answer)))
            return answer

        step("auth/user/add", {"name": "root", "password": "rootpw"})
        step("auth/user/grant", {"user": "root", "role": "root"})
        step("auth/role/add", {"name": "app"})
        step("auth/role/grant", {"name": "app", "perm": {"permType": "READWRITE",
                                                         "key": b64("/app/"),
                                                         "range_end": b64("/app0")}})
        step("auth/user/add", {"name": "app", "password": "apppw"})
        step("auth/user/grant", {"user": "app", "role": "app"})
        step("auth/enable", {})
        step("kv/put", {"key": b64("/app/x"), "value": b64("1")})  # no token
        step("auth/authenticate", {"name": "root", "password": "wrong"})
        root = step("auth/authenticate", {"name": "root", "password": "rootpw"}).get("token")
        app = step("auth/authenticate", {"name": "app", "password": "apppw"}).get("token")
        step("kv/put", {"key": b64("/app/x"), "value": b64("1")}, token=app)
        step("kv/put", {"key": b64("/other"), "value": b64("1")}, token=app)
        step("kv/range", {"key": b64("/other")}, token=app)
        step("kv/range", {"key": b64("/app/x")}, token=app)
        step("kv/range", {"key": b64("/app/x")}, token="not-a-token")
        # A stream refused before its first answer: the status and error object of the code.
        bad = gw.Gateway(endpoint, token="not-a-token")
        status, objects = bad.stream("maintenance/snapshot", {}, timeout=10)
        out.append(("snapshot", status, gw.mask(objects)))
        status, objects = gw.Gateway(endpoint, token=app).stream(
            "watch", {"create_request": {"key": b64("/other")}}, count=1, timeout=5)
        out.append(("watch", status, gw.mask(objects)))
        step("auth/user/list", {}, token=app)
        step("auth/user/list", {}, token=root)
        step("auth/role/get", {"role": "app"}, token=root)
        step("auth/disable", {}, token=root)
        step("kv/range", {"key": b64("/other")})
        g.close()
        return out

    with harness.Cluster(1) as c:
        ours = script(c.members[0].endpoint)
    with reference.etcd_member() as (fresh_etcd, _):
        theirs = script(fresh_etcd)
    for o, t in zip(ours, theirs):
        assert o == t, "chainfire: %s\netcd:      %s" % (o, t)
    assert [o[1] for o in ours].count(200) >= 12


def test_etcd3gw_client_works_unchanged():
    etcd3gw = pytest.importorskip("etcd3gw.client")
    with harness.Cluster(3) as c:
        m = c.members[0]
        client = etcd3gw.Etcd3Client(host="127.0.0.1", port=m.client_port, api_path="/v3/")
        assert client.status()["version"]
        assert len(client.members()) == 3
        lease = client.lease(ttl=30)
        assert client.put("/gw/a", "1", lease=lease)
        assert client.get("/gw/a") == [b"1"]
        assert client.create("/gw/b", "2") is True
        assert client.create("/gw/b", "2") is False
        assert client.replace("/gw/b", "2", "3") is True
        assert client.replace("/gw/b", "2", "3") is False
        got = client.get_prefix("/gw/", sort_order="descend", sort_target="key")
        assert [kv[1]["key"] for kv in got] == [b"/gw/b", b"/gw/a"]
        assert lease.keys() == [b"/gw/a"] and 0 < lease.ttl() <= 30
        events, cancel = client.watch_prefix("/gw/")
        writer = threading.Timer(0.5, lambda: client.put("/gw/c", "4"))
        writer.start()
        try:
            event = next(iter(events))
        finally:
            cancel()
            writer.join()
        assert event["kv"]["key"] == b"/gw/c" and event["kv"]["value"] == b"4"
        lock = client.lock("gw-lock", ttl=10)
        assert lock.acquire() and lock.is_acquired()
        other = client.lock("gw-lock", ttl=10)
        assert other.acquire() is False  # held
        assert lock.release()
        assert client.delete_prefix("/gw/")
        assert client.get_prefix("/gw/") == []
        assert lease.revoke()
        # Writes through the gateway are real writes: etcdctl on another member sees them.
        client.put("/gw/seen", "yes")
        assert c.etcdctl("get", "/gw/seen", "--print-value-only",
                         endpoints=c.members[2].endpoint).stdout.strip() == "yes"


def watcher_count(g):
    """etcd_debugging_mvcc_watcher_total from the client port's /metrics."""
    status, _, body = g.request("GET", "/metrics")
    assert status == 200
    return int(float(re.search(rb"^etcd_debugging_mvcc_watcher_total (\S+)$", body,
                                re.M).group(1)))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def test_hostile_http_gets_4xx_or_a_closed_stream_and_the_member_keeps_serving():
    with harness.Cluster(1, extra=["--max-request-bytes", "65536"]) as c:
        m = c.members[0]
        port = m.client_port
        g = gw.Gateway(m.endpoint)
        rss_before = rss_kb(m.proc.pid)
        # Garbage, an oversized header, an oversized body, a body cut short.
        assert probes.raw_exchange(port, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
        big_header = b"POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100000 + b"\r\n\r\n"
        assert probes.raw_exchange(port, big_header).startswith(b"HTTP/1.1 431")
        huge = json.dumps({"key": b64("k"), "value": "A" * (4 << 20)}).encode()
        answer = probes.raw_exchange(
            port, b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" %
            (len(huge), huge))
        assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
        # Within the HTTP limit but over gRPC's (the request limit + 512 KiB): ResourceExhausted,
        # 429, as etcd's gateway answers it.
        status, answer = g.post("kv/put", {"key": b64("k"), "value": "A" * (800 << 10)})
        assert status == 429 and answer["code"] == 8, (status, answer)
        # Within the HTTP limit but over --max-request-bytes: the gRPC limit refuses it.
        over = {"key": b64("k"), "value": base64.b64encode(b"v" * 70000).decode()}
        status, answer = g.post("kv/put", over)
        assert status == 400 and answer["message"] == "etcdserver: request is too large", answer
        # Wrong types and broken JSON: 400 with code 3.
        for body in ('{"key": [1]}', '{"key": "YQ==", "limit": {}}', "\x00\xff", "null"):
            status, answer = g.post("kv/range", body)
            assert status == 400 and answer["code"] == 3, (body, status, answer)
        # Slow clients: half requests held open do not stop others being served.
        slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(100)]
        try:
            for s in slow:
                s.sendall(b"POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            assert g.post("kv/range", {"key": b64("k")})[0] == 200
        finally:
            for s in slow:
                s.close()
        # Streams dropped mid-chunk and thousands of open watches: memory stays bounded, and
        # a client that goes away frees its watcher.
        g.call("kv/put", {"key": b64("k"), "value": b64("v")})
        watchers = []
        body = json.dumps({"create_request": {"key": b64("k")}}).encode()
        request = (b"POST /v3/watch HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                   % (len(body), body))
        for _ in range(2000):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(request)
            watchers.append(s)
        for s in watchers[:50]:
            assert b'"created":true' in s.recv(65536)
        g.call("kv/put", {"key": b64("k"), "value": b64("again")})
        for s in watchers[:50]:
            got = b""
            while b64("again").encode() not in got:
                got += s.recv(65536)
        deadline = time.time() + 20
        while watcher_count(g) < 2000 and time.time() < deadline:
            time.sleep(0.1)
        assert watcher_count(g) == 2000
        for s in watchers:
            s.close()
        # Closing the socket is all a gateway client does: every watcher goes with it.
        deadline = time.time() + 10
        while watcher_count(g) > 0 and time.time() < deadline:
            time.sleep(0.1)
        assert watcher_count(g) == 0
        assert g.post("kv/range", {"key": b64("k")})[0] == 200
        assert m.alive()
        assert rss_kb(m.proc.pid) - rss_before < 256 * 1024
        g.close()


def test_grpc_and_http_share_the_client_port_and_clients_are_named_by_their_address():
    with harness.Cluster(3) as c:
        m = c.members[0]
        g = gw.Gateway(m.endpoint)
        g.call("kv/put", {"key": b64("shared"), "value": b64("port")})
        # etcdctl (gRPC, HTTP/2) on the very same port.
        assert c.etcdctl("get", "shared", "--print-value-only",
                         endpoints=m.endpoint).stdout.strip() == "port"
        c.etcdctl("put", "shared", "grpc", endpoints=m.endpoint)
        assert base64.b64decode(g.call("kv/range", {"key": b64("shared")})["kvs"][0]["value"]) \
            == b"grpc"
        # HTTP keep-alive: many requests on one connection, and pipelined requests answered
        # in order.
        for i in range(50):
            g.call("kv/put", {"key": b64("ka"), "value": b64(str(i))})
        pipelined = b"".join(
            b"POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
                len(body), body) for body in (json.dumps({"key": b64(k)}).encode()
                                              for k in ("ka", "shared", "nothing")))
        answer = probes.raw_exchange(
            m.client_port,
            pipelined + b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.count(b"HTTP/1.1 200") == 4, answer
        assert answer.index(base64.b64encode(b"49")) < \
            answer.index(base64.b64encode(b"grpc")) < answer.index(b"etcdserver\":")
        # transfer-leadership through the gateway moves the leader (asked of the leader).
        leader = c.leader_member()
        target = next(x for x in c.members if x is not leader)
        lg = gw.Gateway(leader.endpoint)
        target_id = gw.Gateway(target.endpoint).call("maintenance/status", {})["header"][
            "member_id"]
        lg.call("maintenance/transfer-leadership", {"targetID": target_id})
        assert gw.Gateway(target.endpoint).call("maintenance/status", {})["leader"] == target_id
        status, answer = lg.post("maintenance/transfer-leadership", {"targetID": target_id})
        assert status == 412 and answer["message"] == "etcdserver: not leader", answer
        lg.close()
        # Health and version on the client port.
        status, _, body = g.request("GET", "/health")
        assert status == 200 and json.loads(body) == {"health": "true"}
        status, _, body = g.request("GET", "/version")
        version = json.loads(body)
        assert status == 200 and all(re.fullmatch(r"\d+\.\d+\.\d+", version[k])
                                     for k in ("etcdserver", "etcdcluster"))
        # A refused login through the gateway is logged with the HTTP client's address.
        g.call("auth/user/add", {"name": "root", "password": "pw"})
        g.call("auth/user/grant", {"user": "root", "role": "root"})
        g.call("auth/enable", {})
        status, _ = g.post("auth/authenticate", {"name": "root", "password": "bad"})
        assert status == 400
        local_port = g.conn.sock.getsockname()[1]
        deadline = time.time() + 10
        while "127.0.0.1:%d" % local_port not in m.log() and time.time() < deadline:
            time.sleep(0.1)
        assert "127.0.0.1:%d" % local_port in m.log()
        g.close()
