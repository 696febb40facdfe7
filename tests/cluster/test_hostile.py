"""Hostile input against every RPC of a running member: malformed and extreme requests get
etcd's error (code and message) and the member keeps serving, with no memory blow-up.

Requests go through python-etcd3's generated stubs (raw gRPC), so fields etcd clients would
never send (unknown enum values, negative limits, inverted ranges) reach the server as is."""
import os
import queue
import threading
import time

import grpc
import pytest

from chainfire_harness import cluster as harness
from chainfire_harness.api import etcdrpc

INVALID, OUT_OF_RANGE, NOT_FOUND = "INVALID_ARGUMENT", "OUT_OF_RANGE", "NOT_FOUND"
FAILED_PRECONDITION = "FAILED_PRECONDITION"
MAX_RSS_GROWTH_MB = 256


@pytest.fixture(scope="module")
def c():
    with harness.Cluster(3) as c:
        yield c


@pytest.fixture(scope="module")
def target(c):
    """A follower (it forwards writes and reads, the longer path), with stubs on one channel."""
    leader = c.leader_member()
    m = next(x for x in c.members if x is not leader)
    ch = grpc.insecure_channel(m.endpoint, options=[
        ("grpc.max_send_message_length", 8 << 20), ("grpc.max_receive_message_length", 8 << 20)])
    stubs = {"member": m, "leader": leader, "channel": ch, "kv": etcdrpc.KVStub(ch),
             "lease": etcdrpc.LeaseStub(ch), "watch": etcdrpc.WatchStub(ch),
             "maint": etcdrpc.MaintenanceStub(ch), "cluster": etcdrpc.ClusterStub(ch)}
    yield stubs
    ch.close()


def rss_mb(member):
    with open("/proc/%d/status" % member.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS for %s" % member.name)


def expect_error(call, request, code, message):
    with pytest.raises(grpc.RpcError) as e:
        call(request, timeout=10)
    assert e.value.code().name == code, (request, e.value.code(), e.value.details())
    assert e.value.details() == message, (request, e.value.details())


def still_serving(t, label):
    """A write and a linearizable read through the target member still work."""
    assert t["member"].alive(), "member exited after " + label
    key = ("alive/" + label).encode()
    t["kv"].Put(etcdrpc.PutRequest(key=key, value=b"yes"), timeout=10)
    r = t["kv"].Range(etcdrpc.RangeRequest(key=key), timeout=10)
    assert [kv.value for kv in r.kvs] == [b"yes"], label


def test_kv_bad_requests_get_etcds_errors(target):
    t = target
    kv = t["kv"]
    for call, req in [(kv.Range, etcdrpc.RangeRequest()), (kv.Put, etcdrpc.PutRequest()),
                      (kv.DeleteRange, etcdrpc.DeleteRangeRequest())]:
        expect_error(call, req, INVALID, "etcdserver: key is not provided")
    expect_error(kv.Range, etcdrpc.RangeRequest(key=b"a", sort_order=99), INVALID,
                 "etcdserver: invalid sort option")
    expect_error(kv.Range, etcdrpc.RangeRequest(key=b"a", sort_target=42), INVALID,
                 "etcdserver: invalid sort option")
    expect_error(kv.Range, etcdrpc.RangeRequest(key=b"a", revision=1 << 62), OUT_OF_RANGE,
                 "etcdserver: mvcc: required revision is a future revision")
    expect_error(kv.Put, etcdrpc.PutRequest(key=b"k", value=b"v", lease=0x7eadbeef), NOT_FOUND,
                 "etcdserver: requested lease not found")
    expect_error(kv.Put, etcdrpc.PutRequest(key=b"missing", ignore_value=True), INVALID,
                 "etcdserver: key not found")
    expect_error(kv.Put, etcdrpc.PutRequest(key=b"big", value=b"x" * (1600 * 1024)), INVALID,
                 "etcdserver: request is too large")
    with pytest.raises(grpc.RpcError) as e:  # beyond the gRPC message limit (etcd: +512 KiB)
        kv.Put(etcdrpc.PutRequest(key=b"huge", value=b"x" * (3 << 20)), timeout=10)
    assert e.value.code().name == "RESOURCE_EXHAUSTED", e.value.details()
    expect_error(kv.Compact, etcdrpc.CompactionRequest(revision=1 << 62), OUT_OF_RANGE,
                 "etcdserver: mvcc: required revision is a future revision")
    still_serving(t, "kv-errors")


def test_kv_extreme_but_valid_requests(target):
    kv = target["kv"]
    for k in (b"e/a", b"e/b", b"e/c"):
        kv.Put(etcdrpc.PutRequest(key=k, value=k), timeout=10)
    # Inverted range: empty, not an error (as etcd).
    r = kv.Range(etcdrpc.RangeRequest(key=b"e/c", range_end=b"e/a"), timeout=10)
    assert list(r.kvs) == [] and r.count == 0
    # Negative limit and revision mean "none" and "current" (as etcd).
    r = kv.Range(etcdrpc.RangeRequest(key=b"e/", range_end=b"e0", limit=-5, revision=-3),
                 timeout=10)
    assert [x.key for x in r.kvs] == [b"e/a", b"e/b", b"e/c"]
    r = kv.Range(etcdrpc.RangeRequest(key=b"e/", range_end=b"e0", limit=1 << 62), timeout=10)
    assert r.count == 3 and not r.more
    # A large key and a value just under the request limit are stored and read back.
    big_key = b"K" * (512 * 1024)
    kv.Put(etcdrpc.PutRequest(key=big_key, value=b"v"), timeout=10)
    assert kv.Range(etcdrpc.RangeRequest(key=big_key), timeout=10).kvs[0].value == b"v"
    value = b"y" * (1400 * 1024)
    kv.Put(etcdrpc.PutRequest(key=b"e/large", value=value), timeout=10)
    assert kv.Range(etcdrpc.RangeRequest(key=b"e/large"), timeout=10).kvs[0].value == value
    # Binary keys with 0x00 and 0xff bytes.
    kv.Put(etcdrpc.PutRequest(key=b"\x00\xff\x00", value=b"\xff"), timeout=10)
    assert kv.Range(etcdrpc.RangeRequest(key=b"\x00\xff\x00"), timeout=10).kvs[0].value == b"\xff"
    kv.DeleteRange(etcdrpc.DeleteRangeRequest(key=big_key), timeout=10)
    still_serving(target, "kv-extremes")


def test_txn_bad_requests(target):
    kv = target["kv"]

    def put(k):
        return etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=k, value=b"v"))

    expect_error(kv.Txn, etcdrpc.TxnRequest(success=[put(b"t%d" % i) for i in range(129)]),
                 INVALID, "etcdserver: too many operations in txn request")
    expect_error(kv.Txn, etcdrpc.TxnRequest(success=[put(b"t"), put(b"t")]), INVALID,
                 "etcdserver: duplicate key given in txn request")
    expect_error(kv.Txn, etcdrpc.TxnRequest(success=[put(b"")]), INVALID,
                 "etcdserver: key is not provided")
    bad_sort = etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=b"t", sort_order=7))
    expect_error(kv.Txn, etcdrpc.TxnRequest(success=[bad_sort]), INVALID,
                 "etcdserver: invalid sort option")
    # Unknown compare enums are no error in etcd: the comparison is simply not true.
    for cmp in (etcdrpc.Compare(key=b"t", result=9, target=etcdrpc.Compare.VERSION, version=0),
                etcdrpc.Compare(key=b"t", result=etcdrpc.Compare.EQUAL, target=9)):
        r = kv.Txn(etcdrpc.TxnRequest(compare=[cmp], success=[put(b"t-cmp")]), timeout=10)
        assert not r.succeeded
    # Nested transactions: 30 deep is applied; past protobuf's nesting limit of 100 message
    # levels the request cannot be parsed and is refused by gRPC, nothing more.
    def nest(depth, key):
        inner = etcdrpc.TxnRequest(success=[put(key)])
        for _ in range(depth):
            inner = etcdrpc.TxnRequest(success=[etcdrpc.RequestOp(request_txn=inner)])
        return inner

    assert kv.Txn(nest(30, b"nested30"), timeout=10).succeeded
    assert kv.Range(etcdrpc.RangeRequest(key=b"nested30"), timeout=10).count == 1
    with pytest.raises(grpc.RpcError):
        kv.Txn(nest(60, b"nested60"), timeout=10)
    assert kv.Range(etcdrpc.RangeRequest(key=b"nested60"), timeout=10).count == 0
    still_serving(target, "txn")


def test_lease_bad_requests_and_keepalive_flood(target):
    lease = target["lease"]
    expect_error(lease.LeaseGrant, etcdrpc.LeaseGrantRequest(TTL=1 << 62), OUT_OF_RANGE,
                 "etcdserver: too large lease TTL")
    expect_error(lease.LeaseRevoke, etcdrpc.LeaseRevokeRequest(ID=0x5eadbeef), NOT_FOUND,
                 "etcdserver: requested lease not found")
    ttl = lease.LeaseTimeToLive(etcdrpc.LeaseTimeToLiveRequest(ID=0x5eadbeef), timeout=10)
    assert ttl.TTL == -1
    # A negative TTL gets the minimum TTL (as etcd).
    g = lease.LeaseGrant(etcdrpc.LeaseGrantRequest(TTL=-5), timeout=10)
    assert g.TTL >= 1
    g = lease.LeaseGrant(etcdrpc.LeaseGrantRequest(TTL=60), timeout=10)
    before = rss_mb(target["member"])
    n = 5000
    reqs = [etcdrpc.LeaseKeepAliveRequest(ID=g.ID) for _ in range(n)]
    reqs.append(etcdrpc.LeaseKeepAliveRequest(ID=0x5eadbeef))
    got = list(lease.LeaseKeepAlive(iter(reqs), timeout=60))
    assert len(got) == n + 1
    assert all(r.ID == g.ID and r.TTL > 0 for r in got[:n])
    assert got[n].TTL == 0  # unknown lease: TTL 0, the stream goes on
    # Streams cut mid-flight by the client, many times over.
    for _ in range(100):
        call = lease.LeaseKeepAlive(iter([etcdrpc.LeaseKeepAliveRequest(ID=g.ID)] * 20),
                                    timeout=10)
        next(call)
        call.cancel()
    assert rss_mb(target["member"]) < before + MAX_RSS_GROWTH_MB
    still_serving(target, "lease")


class WatchStream:
    """A bidirectional watch stream: send() requests, recv() responses with a bounded wait."""

    def __init__(self, stub):
        self.requests = queue.Queue()
        self.responses = queue.Queue()
        self.call = stub.Watch(iter(self.requests.get, None), timeout=120)
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        try:
            for r in self.call:
                self.responses.put(r)
        except grpc.RpcError as e:
            self.responses.put(e)

    def send(self, req):
        self.requests.put(req)

    def recv(self, timeout=20):
        r = self.responses.get(timeout=timeout)
        if isinstance(r, Exception):
            raise r
        return r

    def close(self):
        self.call.cancel()
        self.requests.put(None)
        self.thread.join(timeout=10)


def test_thousands_of_watches_on_one_stream(target):
    n = 3000
    before = rss_mb(target["member"])
    w = WatchStream(target["watch"])
    try:
        for i in range(n):
            w.send(etcdrpc.WatchRequest(create_request=etcdrpc.WatchCreateRequest(
                key=b"w/", range_end=b"w0")))
        ids = set()
        deadline = time.time() + 60
        while len(ids) < n and time.time() < deadline:
            r = w.recv()
            assert r.created and not r.canceled, r
            ids.add(r.watch_id)
        assert len(ids) == n
        target["kv"].Put(etcdrpc.PutRequest(key=b"w/x", value=b"1"), timeout=10)
        notified = set()
        while len(notified) < n and time.time() < deadline:
            r = w.recv()
            assert [e.kv.key for e in r.events] == [b"w/x"]
            notified.add(r.watch_id)
        assert notified == ids
        # Odd requests on the same stream: an unknown filter, an inverted range, a future
        # start revision, a cancel of an unknown watch; the stream stays usable.
        w.send(etcdrpc.WatchRequest(create_request=etcdrpc.WatchCreateRequest(
            key=b"w/", range_end=b"w0", filters=[7])))
        w.send(etcdrpc.WatchRequest(create_request=etcdrpc.WatchCreateRequest(
            key=b"w/z", range_end=b"w/a")))
        w.send(etcdrpc.WatchRequest(create_request=etcdrpc.WatchCreateRequest(
            key=b"w/", range_end=b"w0", start_revision=1 << 40)))
        w.send(etcdrpc.WatchRequest(cancel_request=etcdrpc.WatchCancelRequest(watch_id=1 << 40)))
        created = 0
        while created < 3:
            r = w.recv()
            if r.created:
                created += 1
        for wid in ids:
            w.send(etcdrpc.WatchRequest(cancel_request=etcdrpc.WatchCancelRequest(watch_id=wid)))
        canceled = set()
        while not ids <= canceled and time.time() < deadline + 60:
            r = w.recv()
            if r.canceled:
                canceled.add(r.watch_id)
        assert ids <= canceled
    finally:
        w.close()
    assert rss_mb(target["member"]) < before + MAX_RSS_GROWTH_MB
    still_serving(target, "watches")


def test_clients_that_disconnect_mid_stream(target):
    m = target["member"]
    before = rss_mb(m)
    for round_ in range(20):
        ch = grpc.insecure_channel(m.endpoint)
        stub = etcdrpc.WatchStub(ch)
        streams = [WatchStream(stub) for _ in range(10)]
        for s in streams:
            for _ in range(10):
                s.send(etcdrpc.WatchRequest(create_request=etcdrpc.WatchCreateRequest(
                    key=b"d/", range_end=b"d0", prev_kv=True)))
            s.recv()
        target["kv"].Put(etcdrpc.PutRequest(key=b"d/%d" % round_, value=b"x" * 10000),
                         timeout=10)
        ch.close()  # every stream cut at once, events possibly in flight
        for s in streams:
            s.requests.put(None)
            s.thread.join(timeout=10)
    assert rss_mb(m) < before + MAX_RSS_GROWTH_MB
    still_serving(target, "disconnects")


def test_maintenance_and_cluster_bad_requests(target, c):
    maint = target["maint"]
    expect_error(maint.HashKV, etcdrpc.HashKVRequest(revision=1 << 62), OUT_OF_RANGE,
                 "etcdserver: mvcc: required revision is a future revision")
    assert maint.HashKV(etcdrpc.HashKVRequest(revision=-1), timeout=10).hash != 0
    expect_error(maint.MoveLeader, etcdrpc.MoveLeaderRequest(targetID=0x1234), FAILED_PRECONDITION,
                 "etcdserver: not leader")  # asked of a follower
    lch = grpc.insecure_channel(target["leader"].endpoint)
    try:
        expect_error(etcdrpc.MaintenanceStub(lch).MoveLeader,
                     etcdrpc.MoveLeaderRequest(targetID=0x1234), FAILED_PRECONDITION,
                     "etcdserver: bad leader transferee")
    finally:
        lch.close()
    r = maint.Alarm(etcdrpc.AlarmRequest(action=9, alarm=9), timeout=10)  # unknown enums
    assert list(r.alarms) == []
    with pytest.raises(grpc.RpcError) as e:
        target["cluster"].MemberAdd(etcdrpc.MemberAddRequest(peerURLs=["not a url" * 1000]),
                                    timeout=10)
    assert e.value.code().name == FAILED_PRECONDITION
    assert "membership is fixed" in e.value.details()
    assert len(target["cluster"].MemberList(etcdrpc.MemberListRequest(), timeout=10).members) == 3
    still_serving(target, "maintenance")


def test_remaining_rpcs_with_odd_input_and_abandoned_snapshots(target):
    m, maint, lease = target["member"], target["maint"], target["lease"]
    cl = target["cluster"]
    for call, req in [(cl.MemberRemove, etcdrpc.MemberRemoveRequest(ID=0xdead)),
                      (cl.MemberUpdate, etcdrpc.MemberUpdateRequest(ID=0, peerURLs=[]))]:
        with pytest.raises(grpc.RpcError) as e:
            call(req, timeout=10)
        assert e.value.code().name == FAILED_PRECONDITION
        assert "membership is fixed" in e.value.details()
    target["kv"].Put(etcdrpc.PutRequest(key=b"h", value=b"1"), timeout=10)
    assert maint.Status(etcdrpc.StatusRequest(), timeout=10).header.revision > 1
    assert maint.Hash(etcdrpc.HashRequest(), timeout=10).hash != 0
    maint.Defragment(etcdrpc.DefragmentRequest(), timeout=60)
    lease.LeaseLeases(etcdrpc.LeaseLeasesRequest(), timeout=10)
    # Snapshot streams abandoned by their clients after the first chunk: each temporary file
    # is removed once its stream ends (bounded wait), and a complete snapshot still works.
    before = rss_mb(m)
    for _ in range(20):
        call = maint.Snapshot(etcdrpc.SnapshotRequest(), timeout=60)
        next(call)
        call.cancel()
    tmp = os.path.join(m.data_dir, "backup-tmp")
    deadline = time.time() + 30
    while time.time() < deadline and os.path.isdir(tmp) and os.listdir(tmp):
        time.sleep(0.1)
    assert not (os.path.isdir(tmp) and os.listdir(tmp)), os.listdir(tmp)
    chunks = list(maint.Snapshot(etcdrpc.SnapshotRequest(), timeout=60))
    assert chunks and chunks[-1].remaining_bytes == 0
    assert rss_mb(m) < before + MAX_RSS_GROWTH_MB
    still_serving(target, "rest")
