"""Every field, enum value and oneof of ChainFire's proto/etcd/*.proto has etcd 3.4.23's name
and number (Debian's golang-etcd-server-dev ships etcd's .proto files): the wire and the JSON
mapping (issue 18's gateway) depend on both."""
import os

import pytest

import proto_names

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ETCD = "/usr/share/gocode/src/go.etcd.io/etcd"
PAIRS = [("proto/etcd/rpc.proto", "etcdserver/etcdserverpb/rpc.proto"),
         ("proto/etcd/kv.proto", "mvcc/mvccpb/kv.proto"),
         ("proto/etcd/auth.proto", "auth/authpb/auth.proto")]

# Names ChainFire has and etcd 3.4.23 does not, and why.
NOT_IN_ETCD_34 = {
    "MemberListRequest.linearizable": "etcd 3.5's field; 3.5 clients send it",
}

FIXTURE = """
syntax = "proto3";
message A {
  // a comment with = 9;
  enum E { X = 0; Y = 1 [deprecated = true]; }
  int64 id = 1 [(gogoproto.customname) = "ID"];
  repeated B items = 2;
  oneof which { string s = 3; B b = 4; }
  message B { bytes key = 1; }
}
/* block
   comment */
enum Top { T0 = 0; }
"""


def test_the_reader_on_a_fixture():
    assert proto_names.read(FIXTURE) == {
        "A.E.X": 0, "A.E.Y": 1, "A.id": 1, "A.items": 2, "A.oneof:which": 0, "A.s": 3,
        "A.b": 4, "A.B.key": 1, "Top.T0": 0}


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_every_name_and_number_is_etcds(ours, theirs):
    path = os.path.join(ETCD, theirs)
    if not os.path.exists(path):
        pytest.skip("golang-etcd-server-dev is not installed")
    mine = proto_names.read(open(os.path.join(REPO, ours)).read())
    etcd = proto_names.read(open(path).read())
    assert len(mine) > 10
    wrong = {k: (v, etcd.get(k)) for k, v in mine.items()
             if etcd.get(k) != v and k not in NOT_IN_ETCD_34}
    assert not wrong, wrong
    # The exceptions are real: etcd 3.4 lacks each.
    for k in NOT_IN_ETCD_34:
        if k.split(".")[0] in {n.split(".")[0] for n in mine}:
            assert k not in etcd
