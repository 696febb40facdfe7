"""The harness's parsers, on outputs recorded from etcdctl 3.4 against a real cluster."""
import os

import cluster

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def test_endpoint_status_three_members_agree_on_leader():
    statuses = cluster.parse_endpoint_status(fixture("endpoint_status_3.json"))
    assert sorted(statuses) == ["127.0.0.1:23791", "127.0.0.1:23792", "127.0.0.1:23793"]
    assert cluster.leader_of(statuses) == 10842555371325928956
    assert statuses["127.0.0.1:23791"]["version"] == "3.4.0"


def test_endpoint_status_disagreement_or_no_leader():
    statuses = cluster.parse_endpoint_status(fixture("endpoint_status_3.json"))
    statuses["127.0.0.1:23792"]["leader"] = 1
    assert cluster.leader_of(statuses) is None
    assert cluster.leader_of({"a": {"leader": 0}}) is None


def test_endpoint_status_all_down_is_empty():
    assert cluster.parse_endpoint_status(fixture("endpoint_status_down.json")) == {}
    assert cluster.parse_endpoint_status("") == {}


def test_member_list():
    members = cluster.parse_member_list(fixture("member_list.json"))
    assert [m[1] for m in members] == ["n1", "n2", "n3"]
    assert members[0][0] == "928f2c17ea8e4a3c"
    assert members[2][3] == ["http://127.0.0.1:23793"]


def test_top_level_varints():
    # WatchResponse{watch_id: 3 (field 2), header: {...} (field 1, bytes), fragment: true (7)}
    data = bytes([0x0a, 0x02, 0x18, 0x05, 0x10, 0x03, 0x38, 0x01])
    assert cluster.top_level_varints(data) == {2: 3, 7: 1}
    assert cluster.read_varint(bytes([0xac, 0x02]), 0) == (300, 2)
    assert cluster.top_level_varints(b"") == {}
