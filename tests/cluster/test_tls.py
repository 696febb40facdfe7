"""Client TLS with real clients: etcdctl with --cacert/--cert/--key and python-etcd3 against a
member serving https:// with --client-cert-auth; what it must refuse (no client certificate, a
certificate from another CA, plaintext) while it keeps serving; a member on an http:// and an
https:// client URL at once; a key that does not match its certificate refuses to start.
Certificates are made by the tests (chainfire_harness/certs.py)."""
import json
import tempfile

import pytest

from chainfire_harness import certs
from chainfire_harness import cluster as harness
from chainfire_harness import probes


@pytest.fixture(scope="module")
def pki():
    with tempfile.TemporaryDirectory(prefix="chainfire-tls-") as d:
        ca = certs.make_ca(d, "ca")
        other_ca = certs.make_ca(d, "other-ca")
        yield {"dir": d, "ca": ca, "server": certs.make_cert(d, "server", ca),
               "client": certs.make_cert(d, "client", ca),
               "stranger": certs.make_cert(d, "stranger", other_ca),
               "expired": certs.make_cert(d, "expired", ca,
                                          valid=("20200101000000Z", "20200102000000Z")),
               "future": certs.make_cert(d, "future", ca,
                                         valid=("20990101000000Z", "20990102000000Z")),
               "elsewhere": certs.make_cert(d, "elsewhere", ca, hosts=("elsewhere.example",))}


def client_tls(pki):
    return harness.ClientTls(pki["ca"][0], pki["server"][0], pki["server"][1],
                             pki["client"][0], pki["client"][1])


def test_etcdctl_and_python_etcd3_over_tls_with_client_certificates(pki, clients):
    with harness.Cluster(1, client_tls=client_tls(pki)) as c:
        c.etcdctl("put", "secure", "yes")
        assert c.etcdctl("get", "secure", "--print-value-only").stdout.strip() == "yes"
        members = json.loads(c.etcdctl("member", "list", "-w", "json").stdout)["members"]
        assert members[0]["clientURLs"] == ["https://" + c.members[0].endpoint]
        client = clients(c.members[0].client_port, ca_cert=pki["ca"][0],
                         cert_cert=pki["client"][0], cert_key=pki["client"][1])
        client.put("from-python", "ok")
        assert client.get("secure")[0] == b"yes"


def test_refused_without_a_trusted_client_certificate_and_keeps_serving(pki):
    with harness.Cluster(1, client_tls=client_tls(pki)) as c:
        ep = c.members[0].endpoint
        attempts = {
            "no client certificate": ["--cacert", pki["ca"][0]],
            "a certificate of another CA": ["--cacert", pki["ca"][0], "--cert",
                                            pki["stranger"][0], "--key", pki["stranger"][1]],
            "plaintext": [],
            "an expired certificate": ["--cacert", pki["ca"][0], "--cert", pki["expired"][0],
                                       "--key", pki["expired"][1]],
            "a certificate not valid yet": ["--cacert", pki["ca"][0], "--cert", pki["future"][0],
                                            "--key", pki["future"][1]],
        }
        for what, flags in attempts.items():
            r = harness.etcdctl(ep, *flags, "put", "k", what, check=False, timeout=30,
                                command_timeout="3s")
            assert r.returncode != 0, "%s was served" % what
        # The member is still serving trusted clients, and nothing refused was written.
        c.etcdctl("put", "after", "ok")
        assert c.etcdctl("get", "k", "--print-value-only").stdout.strip() == ""


def test_http_and_https_client_urls_at_once(pki):
    c = harness.Cluster(1, client_tls=client_tls(pki))
    plain_port = harness.free_ports(1)[0]
    m = c.members[0]
    try:
        m.start(client_urls="https://%s,http://127.0.0.1:%d" % (m.endpoint, plain_port))
        c.wait_for_leader()
        c.etcdctl("put", "both", "1")
        r = harness.etcdctl("127.0.0.1:%d" % plain_port, "get", "both", "--print-value-only")
        assert r.stdout.strip() == "1"
    finally:
        c.__exit__(None, None, None)


def test_a_key_that_does_not_match_its_certificate_refuses_to_start(pki):
    tls = client_tls(pki)
    tls.server_key = pki["client"][1]  # the client's key with the server's certificate
    c = harness.Cluster(1, client_tls=tls)
    try:
        code, out = c.members[0].run_to_exit()
        assert code not in (0, None), out
        assert "does not match the certificate in %s" % pki["server"][0] in out, out
        assert pki["client"][1] in out
    finally:
        c.__exit__(None, None, None)


def test_three_members_with_mutual_tls_between_peers_and_no_stranger_gets_in(pki):
    from chainfire_harness.api import peer_pb2, peer_pb2_grpc
    import grpc
    peer = harness.PeerTls(pki["ca"][0], pki["server"][0], pki["server"][1])
    with harness.Cluster(3, client_tls=client_tls(pki), peer_tls=peer) as c:
        c.etcdctl("put", "replicated", "yes")
        for m in c.members:  # every member applied it: serializable reads are local
            r = c.etcdctl("get", "replicated", "--consistency=s", "--print-value-only",
                          endpoints=m.endpoint)
            assert r.stdout.strip() == "yes"
        target = "127.0.0.1:%d" % c.members[0].peer_port
        ca = open(pki["ca"][0], "rb").read()
        stranger = [open(p, "rb").read() for p in reversed(pki["stranger"])]  # key, cert
        for what, creds in [
                ("plaintext", None),
                ("TLS without a client certificate", grpc.ssl_channel_credentials(ca)),
                ("a certificate of another CA", grpc.ssl_channel_credentials(ca, *stranger))]:
            channel = (grpc.insecure_channel(target) if creds is None
                       else grpc.secure_channel(target, creds))
            try:
                with pytest.raises(grpc.RpcError):
                    peer_pb2_grpc.PeerStub(channel).Probe(peer_pb2.ProbeRequest(), timeout=3)
            finally:
                channel.close()
        # A process holding a certificate of the peer CA does get an answer.
        trusted = [open(p, "rb").read() for p in reversed(pki["client"])]
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(ca, *trusted))
        try:
            assert peer_pb2_grpc.PeerStub(channel).Probe(peer_pb2.ProbeRequest(), timeout=10)
        finally:
            channel.close()
        c.etcdctl("put", "still", "serving")


def test_chainfire_backup_saves_from_a_tls_cluster(pki):
    with harness.Cluster(1, client_tls=client_tls(pki)) as c:
        c.etcdctl("put", "backed", "up")
        ep = "https://" + c.members[0].endpoint
        with tempfile.TemporaryDirectory() as d:
            out = d + "/b.cfb"
            plain = probes.backup_tool("save", "--endpoints", ep, "--timeout", "10", out,
                                       check=False)
            assert plain.returncode != 0, "saved without a client certificate"
            probes.backup_tool("save", "--endpoints", ep, "--cacert", pki["ca"][0], "--cert",
                               pki["client"][0], "--key", pki["client"][1], out)
            inspect = json.loads(probes.backup_tool("inspect", out).stdout)
            assert inspect["keys"] >= 1
            bad = probes.backup_tool("save", "--endpoints", ep, "--cacert", pki["ca"][0],
                                     "--cert", pki["client"][0], "--key", pki["server"][1], out,
                                     check=False)
            assert bad.returncode != 0 and "does not match the certificate" in bad.stderr


def test_chainfire_bench_over_tls(pki):
    with harness.Cluster(1, client_tls=client_tls(pki)) as c:
        ep = "https://" + c.members[0].endpoint
        flags = ["--endpoints", ep, "--op", "put", "--clients", "4", "--conns", "1",
                 "--seconds", "1"]
        run = probes.tool("chainfire-bench", *flags, "--cacert", pki["ca"][0], "--cert",
                          pki["client"][0], "--key", pki["client"][1], timeout=60)
        result = json.loads(run.stdout)
        assert result["ok"] > 0 and result["errors"] == 0, result
        refused = probes.tool("chainfire-bench", *flags, "--cacert", pki["ca"][0], check=False,
                              timeout=60)
        assert refused.returncode == 1 and json.loads(refused.stdout)["ok"] == 0


def test_peer_cert_allowed_cn_refuses_a_certificate_of_the_right_ca_with_another_cn(pki):
    from chainfire_harness.api import peer_pb2, peer_pb2_grpc
    import grpc
    peer = harness.PeerTls(pki["ca"][0], pki["server"][0], pki["server"][1])
    c = harness.Cluster(3, peer_tls=peer, extra=["--peer-cert-allowed-cn", "server"])
    with c:
        c.etcdctl("put", "cn", "ok")  # the members' own certificates (CN=server) are allowed
        target = "127.0.0.1:%d" % c.members[0].peer_port
        ca = open(pki["ca"][0], "rb").read()

        def probe(pair):
            key, cert = [open(p, "rb").read() for p in reversed(pair)]
            channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(ca, key, cert))
            try:
                return peer_pb2_grpc.PeerStub(channel).Probe(peer_pb2.ProbeRequest(), timeout=5)
            finally:
                channel.close()
        assert probe(pki["server"]) is not None
        with pytest.raises(grpc.RpcError):
            probe(pki["client"])  # the peer CA's, but CN=client
        assert "is not the allowed CN 'server'" in c.members[0].log()
        c.etcdctl("put", "still", "serving")


def test_cipher_suites_refuse_a_client_offering_only_another_suite(pki):
    import subprocess
    tls = client_tls(pki)
    tls.client_cert_auth = False
    allowed, other = "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"
    c = harness.Cluster(1, client_tls=tls,
                        extra=["--cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"])
    with c:
        def handshake(cipher):
            r = subprocess.run(["openssl", "s_client", "-connect", c.members[0].endpoint,
                                "-tls1_2", "-cipher", cipher, "-CAfile", pki["ca"][0]],
                               input="", capture_output=True, text=True, timeout=30)
            return "Cipher is " + cipher in r.stdout
        assert handshake(allowed), "the allowed suite is served"
        assert not handshake(other), "a client offering only another suite was served"
        c.etcdctl("put", "still", "serving")


def test_tls_to_a_plaintext_port_and_garbage_to_a_tls_port_are_refused(pki):
    import os
    import socket
    c = harness.Cluster(1, client_tls=client_tls(pki))
    plain_port = harness.free_ports(1)[0]
    m = c.members[0]
    try:
        m.start(client_urls="https://%s,http://127.0.0.1:%d" % (m.endpoint, plain_port))
        c.wait_for_leader()
        r = harness.etcdctl("127.0.0.1:%d" % plain_port, "--cacert", pki["ca"][0], "--cert",
                            pki["client"][0], "--key", pki["client"][1], "put", "k", "v",
                            check=False, timeout=30, command_timeout="3s")
        assert r.returncode != 0, "TLS to the plaintext port was served"
        for _ in range(3):  # a garbage byte stream, then the connection closed
            with socket.create_connection(("127.0.0.1", m.client_port), timeout=5) as s:
                s.sendall(os.urandom(4096))
                s.settimeout(5)
                try:
                    while s.recv(4096):
                        pass
                except (ConnectionResetError, socket.timeout):
                    pass
        c.etcdctl("put", "after", "garbage")  # still serving TLS clients
        assert harness.etcdctl("127.0.0.1:%d" % plain_port, "get", "after",
                               "--print-value-only").stdout.strip() == "garbage"
        assert "Handshake failed" in m.log()
    finally:
        c.__exit__(None, None, None)


def test_unreadable_certificate_files_refuse_to_start_naming_the_file(pki):
    for flag in ("cert_file", "key_file", "ca"):
        tls = client_tls(pki)
        missing = pki["dir"] + "/missing-" + flag + ".pem"
        if flag == "ca":
            tls.ca = missing
        elif flag == "cert_file":
            tls.server_cert = missing
        else:
            tls.server_key = missing
        c = harness.Cluster(1, client_tls=tls)
        try:
            code, out = c.members[0].run_to_exit()
            assert code not in (0, None), out
            assert missing + ": cannot be read" in out, out
        finally:
            c.__exit__(None, None, None)


def test_peer_cert_allowed_hostname_refuses_a_certificate_for_another_host(pki):
    from chainfire_harness import tls_clients as tc
    peer = harness.PeerTls(pki["ca"][0], pki["server"][0], pki["server"][1])
    c = harness.Cluster(3, peer_tls=peer, extra=["--peer-cert-allowed-hostname", "localhost"])
    with c:
        c.etcdctl("put", "hostname", "ok")  # the members' certificates name localhost
        target = "127.0.0.1:%d" % c.members[0].peer_port

        def served(pair):
            ch = tc.channel(target, pki["ca"][0], *pair)
            try:
                return tc.answered(tc.probe_peer, ch)
            finally:
                ch.close()
        assert served(pki["client"])  # the peer CA's, valid for localhost
        assert not served(pki["elsewhere"])  # the peer CA's, but for elsewhere.example only
        assert "is not valid for the allowed hostname 'localhost'" in c.members[0].log()
        c.etcdctl("put", "still", "serving")


def test_json_gateway_over_https_on_its_own_listener_with_client_certificates(pki):
    """https:// client URLs are gRPC's own TLS listener; --listen-client-http-urls serves the
    JSON gateway (and /version, /health) over HTTPS with the same certificates and client
    certificate rules, and is advertised in clientURLs for clients that follow them."""
    import base64
    import ssl
    import urllib.error
    import urllib.request
    c = harness.Cluster(1, client_tls=client_tls(pki))
    http_port = harness.free_ports(1)[0]
    m = c.members[0]
    m.extra = ["--listen-client-http-urls", "https://127.0.0.1:%d" % http_port]
    url = "https://127.0.0.1:%d" % http_port

    def context(cert=True):
        ctx = ssl.create_default_context(cafile=pki["ca"][0])
        if cert:
            ctx.load_cert_chain(pki["client"][0], pki["client"][1])
        return ctx

    def post(path, body, ctx):
        req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return json.loads(r.read())

    try:
        c.start()
        post("/v3/kv/put", {"key": base64.b64encode(b"gw").decode(),
                            "value": base64.b64encode(b"tls").decode()}, context())
        assert c.etcdctl("get", "gw", "--print-value-only").stdout.strip() == "tls"
        with urllib.request.urlopen(url + "/version", timeout=10, context=context()) as r:
            assert "etcdcluster" in json.loads(r.read())
        members = post("/v3/cluster/member/list", {}, context())["members"]
        assert url in members[0]["clientURLs"] and "https://" + m.endpoint in \
            members[0]["clientURLs"]
        # No client certificate: the handshake is refused, and the member keeps serving.
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
            post("/v3/kv/range", {"key": base64.b64encode(b"gw").decode()}, context(cert=False))
        # Plain HTTP to the HTTPS listener: no answer in the clear.
        with pytest.raises((urllib.error.URLError, ConnectionResetError, OSError)) as refused:
            urllib.request.urlopen("http://127.0.0.1:%d/version" % http_port, timeout=10)
        assert not isinstance(refused.value, urllib.error.HTTPError)
        assert post("/v3/kv/range", {"key": base64.b64encode(b"gw").decode()},
                    context())["count"] == "1"
    finally:
        c.__exit__(None, None, None)
