#!/usr/bin/python3
"""Writes the seed inputs of the peer_message and request_validation fuzz targets into
tests/fuzz/corpus/ (committed; rerun after changing the protos). Peer messages are encoded
with a protoc-generated module of proto/chainfire/peer.proto; etcd requests with
python3-etcd3's generated etcd v3 messages. backup_reader's seeds are real backup files
written by chainfire-backup (see docs/testing.md)."""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def request_seeds():
    from etcd3 import etcdrpc
    put = etcdrpc.PutRequest(key=b"k", value=b"v")
    rng = etcdrpc.RangeRequest(key=b"a", range_end=b"z", limit=2, sort_order=2, sort_target=1)
    cmp = etcdrpc.Compare(key=b"k", result=etcdrpc.Compare.EQUAL, target=etcdrpc.Compare.VALUE,
                          value=b"v")
    txn = etcdrpc.TxnRequest(compare=[cmp], success=[
        etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=b"k2", value=b"w")),
        etcdrpc.RequestOp(request_range=rng)], failure=[
        etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=b"k",
                                                                          prev_kv=True))])
    seeds = {"range": (0, rng), "put": (1, put), "delete": (2, etcdrpc.DeleteRangeRequest(
        key=b"a", range_end=b"\x00")), "txn": (3, txn), "compact": (4, etcdrpc.CompactionRequest(
            revision=2))}
    for name, (kind, msg) in seeds.items():
        write("request_validation", name, bytes([kind]) + msg.SerializeToString())


def peer_seeds():
    with tempfile.TemporaryDirectory() as d:
        protos = [os.path.join(sub, f) for sub in ("etcd", "chainfire")
                  for f in sorted(os.listdir(os.path.join(REPO, "proto", sub)))
                  if f.endswith(".proto")]
        subprocess.run(["protoc", "-I", os.path.join(REPO, "proto"), "--python_out", d] + protos,
                       check=True)
        sys.path.insert(0, d)
        from chainfire import peer_pb2 as pb  # noqa: E402
        # Message types as in include/chainfire/raft/types.h.
        APP, APP_RESP, VOTE, PREVOTE, SNAP, HEARTBEAT, READ_INDEX = 1, 2, 3, 5, 7, 8, 12
        batch = pb.MessageBatch(cluster_id=1, **{"from": 2})
        m = batch.messages.add(type=APP, to=1, term=2, index=4, log_term=2, commit=5)
        setattr(m, "from", 2)
        m.entries.add(term=2, index=5, data=b"e5")
        h = batch.messages.add(type=HEARTBEAT, to=1, term=2, commit=5, context=b"r1")
        setattr(h, "from", 2)
        write("peer_message", "append-heartbeat", batch.SerializeToString())
        batch = pb.MessageBatch(cluster_id=1)
        for t, term in ((PREVOTE, 3), (VOTE, 3)):
            v = batch.messages.add(type=t, to=1, term=term, index=9, log_term=2)
            setattr(v, "from", 3)
        write("peer_message", "votes", batch.SerializeToString())
        batch = pb.MessageBatch(cluster_id=1)
        s = batch.messages.add(type=SNAP, to=1, term=3)
        setattr(s, "from", 2)
        s.snapshot.index, s.snapshot.term = 10, 3
        r = batch.messages.add(type=READ_INDEX, to=1, term=3, context=b"read")
        setattr(r, "from", 3)
        a = batch.messages.add(type=APP_RESP, to=1, term=2, index=4, reject=True, reject_hint=3)
        setattr(a, "from", 3)
        write("peer_message", "snapshot-read-resp", batch.SerializeToString())


if __name__ == "__main__":
    # Two processes: etcd3's generated etcd messages and ours cannot share a descriptor pool.
    if sys.argv[1:] == ["peer"]:
        peer_seeds()
    else:
        request_seeds()
        subprocess.run([sys.executable, os.path.abspath(__file__), "peer"], check=True)
