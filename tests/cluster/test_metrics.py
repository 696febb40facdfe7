"""Observability of a running member (docs/monitoring.md): /metrics in Prometheus's text format
under etcd's names, checked by `promtool` and against etcd 3.4.23's own /metrics; /health exactly
as etcd 3.4's (200 {"health":"true"}, 503 {"health":"false"} when quorum is lost, 405 for other
methods), and the listener's answers to bad requests."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from chainfire_harness import cluster as harness
from chainfire_harness import probes

# promtool's lint warnings that etcd 3.4's own metric names draw (its gauges named _total, its
# counters without _total); ChainFire keeps etcd's names, so it draws these and no others.
ETCD_NAMING_WARNINGS = {
    "etcd_debugging_mvcc_keys_total non-counter metrics should not have \"_total\" suffix",
    "etcd_debugging_mvcc_watcher_total non-counter metrics should not have \"_total\" suffix",
    "etcd_server_health_failures counter metrics should have \"_total\" suffix",
    "etcd_server_health_success counter metrics should have \"_total\" suffix",
    "etcd_server_proposals_applied_total non-counter metrics should not have \"_total\" suffix",
    "etcd_server_proposals_committed_total non-counter metrics should not have \"_total\" suffix",
}


def http_get(port, path, method="GET", timeout=10):
    """(status, body) of one request; errors with a status are answers too."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def parse_metrics(text):
    """{name: type} and {sample (name with labels): value} of an exposition text."""
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return types, samples


def promtool_warnings(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode in (0, 3), "promtool found errors (%d): %s" % (r.returncode, r.stderr)
    return {line.strip() for line in (r.stdout + r.stderr).splitlines() if line.strip()}


def test_parse_metrics_reads_types_and_samples():
    types, samples = parse_metrics('# HELP a x\n# TYPE a counter\na 3\nb{l="1 2"} 0.5\n')
    assert types == {"a": "counter"} and samples == {"a": 3.0, 'b{l="1 2"}': 0.5}


@pytest.fixture(scope="module")
def etcd_metrics():
    """The /metrics text of a real etcd 3.4 member after a write (the reference)."""
    etcd = shutil.which("etcd")
    if etcd is None:
        pytest.skip("etcd-server is not installed")
    client, peer, metrics = harness.free_ports(3)
    with tempfile.TemporaryDirectory() as d:
        proc = subprocess.Popen(
            [etcd, "--name", "ref", "--data-dir", d + "/data",
             "--listen-client-urls", "http://127.0.0.1:%d" % client,
             "--advertise-client-urls", "http://127.0.0.1:%d" % client,
             "--listen-peer-urls", "http://127.0.0.1:%d" % peer,
             "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer,
             "--initial-cluster", "ref=http://127.0.0.1:%d" % peer,
             "--listen-metrics-urls", "http://127.0.0.1:%d" % metrics],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            harness.etcdctl("127.0.0.1:%d" % client, "put", "k", "v", timeout=30)
            yield http_get(metrics, "/metrics")[1]
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def member():
    with harness.Cluster(1, metrics=True) as c:
        c.etcdctl("put", "k", "v")
        c.etcdctl("get", "k")
        yield c


def test_promtool_finds_no_error_and_only_the_warnings_etcds_names_draw(member, etcd_metrics):
    status, text = http_get(member.members[0].metrics_port, "/metrics")
    assert status == 200
    ours = promtool_warnings(text)
    assert ours <= ETCD_NAMING_WARNINGS, ours - ETCD_NAMING_WARNINGS
    # etcd 3.4 draws the same ones.
    assert ETCD_NAMING_WARNINGS <= promtool_warnings(etcd_metrics)


def test_metrics_etcd_also_has_carry_etcds_type(member, etcd_metrics):
    ours, samples = parse_metrics(http_get(member.members[0].metrics_port, "/metrics")[1])
    theirs, _ = parse_metrics(etcd_metrics)
    shared = {n for n in ours if n in theirs}
    assert len(shared) >= 25, sorted(shared)
    assert {n: ours[n] for n in shared} == {n: theirs[n] for n in shared}
    for name in ("etcd_server_has_leader", "etcd_server_is_leader", "etcd_mvcc_put_total",
                 "etcd_disk_wal_fsync_duration_seconds", "grpc_server_handled_total",
                 "process_resident_memory_bytes", "etcd_server_proposals_committed_total"):
        assert name in shared, name
    assert samples["etcd_server_has_leader"] == 1 and samples["etcd_server_is_leader"] == 1


def test_counters_follow_the_work_done():
    with harness.Cluster(3, metrics=True) as c:
        def scrape(m):
            return parse_metrics(http_get(m.metrics_port, "/metrics")[1])[1]
        m = c.members[0]
        before = [scrape(x) for x in c.members]
        for i in range(20):
            c.etcdctl("put", "count/%d" % i, "x", endpoints=m.endpoint)
        handled = ('grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",'
                   'grpc_method="Put",grpc_code="OK"}')
        after = scrape(m)
        assert after[handled] - before[0].get(handled, 0) == 20
        assert after["etcd_server_proposals_committed_total"] >= (
            before[0]["etcd_server_proposals_committed_total"] + 20)
        # Every member applies every put.
        deadline = time.time() + 10
        for x, b in zip(c.members, before):
            while time.time() < deadline and (
                    scrape(x).get("etcd_mvcc_put_total", 0) - b.get("etcd_mvcc_put_total", 0) < 20):
                time.sleep(0.1)
            assert scrape(x)["etcd_mvcc_put_total"] - b.get("etcd_mvcc_put_total", 0) == 20, x.name
        assert sum(scrape(x)["etcd_server_is_leader"] for x in c.members) == 1
        # etcd_debugging_mvcc_keys_total counts live keys: 20 created, then 5 deleted and one
        # overwritten (no change), on every member.
        for x, b in zip(c.members, before):
            assert scrape(x)["etcd_debugging_mvcc_keys_total"] == (
                b["etcd_debugging_mvcc_keys_total"] + 20), x.name
        c.etcdctl("del", "count/1", "count/15", endpoints=m.endpoint)  # count/1, count/10..14
        c.etcdctl("put", "count/0", "again", endpoints=m.endpoint)
        deadline = time.time() + 10
        for x, b in zip(c.members, before):
            want = b["etcd_debugging_mvcc_keys_total"] + 14
            while time.time() < deadline and scrape(x)["etcd_debugging_mvcc_keys_total"] != want:
                time.sleep(0.1)
            assert scrape(x)["etcd_debugging_mvcc_keys_total"] == want, x.name
        assert scrape(m)["chainfire_rocksdb_write_stall_seconds_total"] >= 0
        # Raft traffic (the leader sends to both followers) and the 5-second probe between
        # members are counted per peer.
        lead = c.leader_member()
        peers = [k for k in scrape(lead) if k.startswith("etcd_network_peer_sent_bytes_total{")]
        assert len(peers) == 2 and all(scrape(lead)[k] > 0 for k in peers), peers
        deadline = time.time() + 15
        rtt = lambda: [v for k, v in scrape(m).items()
                       if k.startswith("etcd_network_peer_round_trip_time_seconds_count{")]
        while time.time() < deadline and not (len(rtt()) == 2 and min(rtt()) > 0):
            time.sleep(0.5)
        assert len(rtt()) == 2 and min(rtt()) > 0, rtt()
        # ChainFire's own: the leader sees both followers; reads and fsyncs timed.
        lags = [v for k, v in scrape(lead).items()
                if k.startswith("chainfire_server_follower_lag_entries{")]
        assert len(lags) == 2, lags
        c.etcdctl("get", "count/0", endpoints=m.endpoint)
        assert scrape(m)["chainfire_server_read_index_duration_seconds_count"] >= 1
        assert scrape(m)["chainfire_disk_wal_group_commit_entries_count"] >= 1


def wait_for_log(member, text, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline and text not in member.log():
        time.sleep(0.2)
    return text in member.log()


def test_a_member_of_another_cluster_is_logged_with_its_address():
    # x1 (cluster token x) lists n2 and n3 of a running cluster as its peers: each side logs
    # the mismatch once, naming the other's address.
    with harness.Cluster(3) as c:
        x = harness.Cluster(names=["x1"], token="other-%d" % os.getpid())
        try:
            x1, n2 = x.members[0], c.members[1]
            initial = "x1=%s,n2=%s,n3=%s" % (x1.peer_url, n2.peer_url, c.members[2].peer_url)
            x1.start(initial_cluster=initial)
            assert wait_for_log(x1, "answers as cluster", 20), x1.log()
            line = next(l for l in x1.log().splitlines() if "answers as cluster" in l)
            assert "the member at 127.0.0.1:%d" % n2.peer_port in line or (
                "the member at 127.0.0.1:%d" % c.members[2].peer_port in line), line
            assert wait_for_log(n2, "which is not a member of cluster", 20), n2.log()
            line = next(l for l in n2.log().splitlines() if "not a member of cluster" in l)
            assert "at ipv4:127.0.0.1:" in line, line
            # The cluster's own members never log it about each other, and keep serving.
            for m in c.members:
                assert "answers as cluster" not in m.log(), m.name
            assert "not a member of cluster" not in c.members[0].log()
            c.etcdctl("put", "still", "serving")
        finally:
            x.__exit__(None, None, None)


def test_health_is_etcds_and_follows_quorum():
    with harness.Cluster(3, metrics=True) as c:
        port = c.members[0].metrics_port
        assert http_get(port, "/health") == (200, '{"health":"true"}')
        assert http_get(port, "/health", method="POST")[0] == 405
        assert http_get(port, "/nowhere")[0] == 404
        for m in c.members[1:]:
            m.kill()
        start = time.time()
        while time.time() - start < 15 and http_get(port, "/health")[0] != 503:
            time.sleep(0.2)
        took = time.time()
        assert http_get(port, "/health") == (503, '{"health":"false"}')
        assert time.time() - took < 3, "an unhealthy answer comes within its own timeout"
        for m in c.members[1:]:
            m.start()
        c.wait_for_leader()
        start = time.time()
        while time.time() - start < 15 and http_get(port, "/health")[0] != 200:
            time.sleep(0.2)
        assert http_get(port, "/health") == (200, '{"health":"true"}')
        _, samples = parse_metrics(http_get(port, "/metrics")[1])
        assert samples["etcd_server_health_failures"] >= 1
        assert samples["etcd_server_health_success"] >= 2


def test_bad_http_requests_get_4xx_and_the_listener_keeps_serving(member):
    port = member.members[0].metrics_port

    def rss():
        return parse_metrics(http_get(port, "/metrics")[1])[1]["process_resident_memory_bytes"]
    rss_before = rss()

    def raw(data, timeout=15):
        return probes.raw_exchange(port, data, timeout=timeout)
    assert raw(b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400") or raw(b"GARBAGE\r\n\r\n") == b""
    huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n"
    answer = raw(huge)
    assert answer == b"" or answer.split(b" ")[1].startswith(b"4"), answer[:100]
    for method in ("DELETE", "PUT", "PATCH"):
        assert http_get(port, "/metrics", method=method)[0] == 405
    # Half requests (slowloris): held open, they do not stop others from being served.
    slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(50)]
    try:
        for s in slow:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        assert http_get(port, "/health")[0] == 200
    finally:
        for s in slow:
            s.close()
    assert http_get(port, "/metrics")[0] == 200
    for _ in range(100):  # many oversized requests: memory stays bounded
        raw(huge, timeout=5)
    assert rss() - rss_before < 64 << 20


RULES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                         "monitoring")


def test_alert_rules_pass_promtool_check_and_their_unit_tests():
    r = subprocess.run(["promtool", "check", "rules", "chainfire-alerts.yml"], cwd=RULES_DIR,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "SUCCESS: 7 rules found" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(["promtool", "test", "rules", "chainfire-alerts-test.yml"],
                       cwd=RULES_DIR, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


class Prometheus:
    """A real Prometheus on loopback scraping the given metrics ports every second, with the
    shipped alert rules; stopped on exit."""

    def __init__(self, ports):
        import json
        self.json = json
        self.dir = tempfile.mkdtemp(prefix="chainfire-prometheus-")
        self.port = harness.free_ports(1)[0]
        targets = ", ".join('"127.0.0.1:%d"' % p for p in ports)
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    "rule_files: [\"%s\"]\n"
                    "scrape_configs:\n  - job_name: chainfire\n"
                    "    static_configs: [{targets: [%s]}]\n" %
                    (os.path.abspath(os.path.join(RULES_DIR, "chainfire-alerts.yml")), targets))
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file", os.path.join(self.dir, "prometheus.yml"),
             "--storage.tsdb.path", os.path.join(self.dir, "data"),
             "--web.listen-address", "127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path):
        status, body = http_get(self.port, path)
        assert status == 200, body
        return self.json.loads(body)["data"]

    def query(self, expr):
        """{instance: value} of an instant query (instance "" when aggregated away)."""
        q = urllib.request.quote(expr)
        try:
            result = self.api("/api/v1/query?query=" + q)["result"]
        except (urllib.error.URLError, ConnectionError):
            return {}
        return {r["metric"].get("instance", ""): float(r["value"][1]) for r in result}

    def wait(self, what, condition, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError("Prometheus: %s not within %ss (log: %s)" % (
            what, timeout, open(os.path.join(self.dir, "prometheus.log")).read()[-2000:]))

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_a_real_prometheus_scrapes_the_cluster_and_the_no_leader_alert_fires():
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed")
    with harness.Cluster(3, metrics=True) as c:
        prom = Prometheus([m.metrics_port for m in c.members])
        try:
            prom.wait("every target up", lambda: len(prom.query("up == 1")) == 3)
            prom.wait("three members with a leader",
                      lambda: prom.query("sum(etcd_server_has_leader)").get("") == 3)
            committed = lambda: max(prom.query("etcd_server_proposals_committed_total").values())
            before = committed()
            for i in range(30):
                c.etcdctl("put", "prom/%d" % i, "x")
            prom.wait("proposals committed growing", lambda: committed() >= before + 30)

            leader = c.leader_member()
            survivors = [m for m in c.members if m is not leader]
            changes = lambda: prom.query("etcd_server_leader_changes_seen_total")
            seen = changes()
            leader.kill()
            c.wait_for_leader(members=survivors)
            prom.wait("leader changes seen by the survivors", lambda: all(
                changes().get("127.0.0.1:%d" % m.metrics_port, 0) >
                seen.get("127.0.0.1:%d" % m.metrics_port, 0) for m in survivors))

            survivors[1].kill()  # quorum lost: the last member has no leader
            lonely = "127.0.0.1:%d" % survivors[0].metrics_port
            prom.wait("has_leader 0 on the last member",
                      lambda: prom.query("etcd_server_has_leader").get(lonely) == 0)

            def firing():
                return [a for a in prom.api("/api/v1/alerts")["alerts"]
                        if a["labels"]["alertname"] == "ChainFireNoLeader" and
                        a["labels"]["instance"] == lonely and a["state"] == "firing"]
            prom.wait("ChainFireNoLeader firing", firing, timeout=100)
        finally:
            prom.close()


def test_zap_logger_writes_json_lines_with_etcds_fields_to_the_named_output():
    import json
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "member.log")
        with harness.Cluster(1, extra=["--logger", "zap", "--log-outputs", path]) as c:
            c.etcdctl("put", "k", "v")
            c.members[0].kill(signal.SIGTERM)
        lines = open(path).read().splitlines()
        assert len(lines) >= 3
        records = [json.loads(line) for line in lines]  # every line is one JSON object
        for r in records:
            assert {"level", "ts", "msg", "name"} <= r.keys(), r
            assert r["name"] == "n1" and r["level"] in ("debug", "info", "warn", "error")
            time.strptime(r["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert any(r["msg"].startswith("member ") and "leader changed from 0 to" in r["msg"]
                   for r in records), [r["msg"] for r in records]
        assert any("shutting down" in r["msg"] for r in records)


def test_https_metrics_url_uses_the_client_tls_and_follows_its_files():
    import ssl
    from chainfire_harness import certs

    def get(port, ca, pair=None):
        ctx = ssl.create_default_context(cafile=ca)
        if pair:
            ctx.load_cert_chain(pair[0], pair[1])
        req = urllib.request.Request("https://127.0.0.1:%d/health" % port)
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return r.status, r.read().decode()

    def refused(port, ca, pair=None):
        try:
            get(port, ca, pair)
            return False
        except (urllib.error.URLError, ssl.SSLError, ConnectionError, OSError):
            return True

    with tempfile.TemporaryDirectory() as d:
        ca, other = certs.make_ca(d, "ca"), certs.make_ca(d, "other")
        server = certs.make_cert(d, "server", ca)
        client, newcomer = certs.make_cert(d, "client", ca), certs.make_cert(d, "newcomer", other)
        bundle = certs.bundle(os.path.join(d, "bundle.crt"), ca[0])
        port = harness.free_ports(1)[0]
        tls = harness.ClientTls(bundle, server[0], server[1], *client)
        with harness.Cluster(1, client_tls=tls,
                             extra=["--listen-metrics-urls", "https://127.0.0.1:%d" % port]):
            assert get(port, ca[0], client) == (200, '{"health":"true"}')
            assert refused(port, ca[0]), "served without a client certificate"
            assert refused(port, ca[0], newcomer), "served another CA's certificate"
            assert http_get_refused(port), "served plain HTTP on an https:// metrics URL"
            # The bundle gains the other CA: its certificates are served from then on.
            certs.bundle(bundle, ca[0], other[0])
            deadline = time.time() + 15
            while time.time() < deadline and refused(port, ca[0], newcomer):
                time.sleep(0.2)
            assert get(port, ca[0], newcomer)[0] == 200


def http_get_refused(port):
    try:
        http_get(port, "/health", timeout=5)
        return False
    except (urllib.error.URLError, ConnectionError, OSError):
        return True
