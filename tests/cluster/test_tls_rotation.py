"""TLS material rotated while members run (docs/security.md, "Rotating certificates"): the whole
overlap-and-cutover flow on a live 3-member cluster with a writer throughout, a CRL updated under
a running member, and bad files written in place. Nothing is restarted: the members follow
their files. Certificates are made by the tests (chainfire_harness/certs.py)."""
import os
import shutil
import tempfile
import threading
import time

import pytest

from chainfire_harness import certs
from chainfire_harness import cluster as harness
from chainfire_harness import tls_clients as tc

# Connections live at most about AGE * 1.1 (gRPC's jitter) + GRACE on a TLS port; the files are
# looked at every second and gRPC's file watcher takes the copies within another.
AGE, GRACE = 3, 1
CUT_BOUND = AGE * 1.1 + GRACE + 2 + 3  # + reload + slack for a loaded machine
AGE_FLAGS = ["--tls-max-connection-age", "%ds" % AGE, "--tls-max-connection-age-grace",
             "%ds" % GRACE]


def copy(src, dst):
    shutil.copyfile(src, dst)


def write_in_place(src, dst):
    """Rewrites `dst` with `src`'s bytes in place (not by a rename), as a careless operator."""
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.read())


class Writer:
    """Puts unique keys round-robin over the members from a thread, with a client identity the
    test can switch; records every acknowledged key and every failure."""

    def __init__(self, endpoints, identity):
        self.endpoints, self.identity = endpoints, identity
        self.acked, self.failures, self.attempts = {}, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        channels, used = {}, None
        i = 0
        while not self._stop.is_set():
            if self.identity != used:  # a switch: new connections with the new certificate
                for ch in channels.values():
                    ch.close()
                used = self.identity
                channels = {ep: tc.channel(ep, *used) for ep in self.endpoints}
            ep = self.endpoints[i % len(self.endpoints)]
            key, value = "rot/%06d" % i, "v%d" % i
            self.attempts += 1
            try:
                tc.put(channels[ep], key, value)
                self.acked[key] = value
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                self.failures.append((time.time(), ep, str(e)[:200]))
            i += 1
            self._stop.wait(0.02)
        for ch in channels.values():
            ch.close()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)


@pytest.fixture
def pki():
    with tempfile.TemporaryDirectory(prefix="chainfire-rotation-") as d:
        old, new = certs.make_ca(d, "ca-old"), certs.make_ca(d, "ca-new")
        p = {"dir": d, "old": old, "new": new,
             "server_old": certs.make_cert(d, "server-old", old),
             "server_new": certs.make_cert(d, "server-new", new),
             "client_old": certs.make_cert(d, "client-old", old),
             "client_new": certs.make_cert(d, "client-new", new),
             "both": certs.bundle(os.path.join(d, "both.crt"), old[0], new[0])}
        live = os.path.join(d, "live")
        os.makedirs(live)
        p["live"] = {"ca": os.path.join(live, "ca.crt"), "cert": os.path.join(live, "server.crt"),
                     "key": os.path.join(live, "server.key")}
        yield p


def test_overlap_and_cutover_on_a_live_cluster_with_a_writer(pki):
    live = pki["live"]
    copy(pki["old"][0], live["ca"])
    copy(pki["server_old"][0], live["cert"])
    copy(pki["server_old"][1], live["key"])
    ctls = harness.ClientTls(live["ca"], live["cert"], live["key"], *pki["client_old"])
    ptls = harness.PeerTls(live["ca"], live["cert"], live["key"])
    c = harness.Cluster(3, client_tls=ctls, peer_tls=ptls, extra=AGE_FLAGS)
    with c:
        pids = [m.proc.pid for m in c.members]
        eps = [m.endpoint for m in c.members]
        peers = ["127.0.0.1:%d" % m.peer_port for m in c.members]
        writer = Writer(eps, (pki["old"][0],) + pki["client_old"])
        # Connected under CA-old and kept: a client and a peer that trust both CAs but present
        # CA-old certificates.
        old_client = tc.Pinger(tc.channel(eps[0], pki["both"], *pki["client_old"]),
                               lambda ch: tc.get(ch, "rot/000000"))
        old_peer = tc.Pinger(tc.channel(peers[1], pki["both"], *pki["server_old"]),
                             tc.probe_peer)
        try:
            def served(ep, ca, pair, call):
                ch = tc.channel(ep, ca, *pair)
                try:
                    return tc.answered(call, ch)
                finally:
                    ch.close()

            def client_served(ep, ca, pair):
                return served(ep, ca, pair, lambda ch: tc.get(ch, "rot/000000"))

            def peer_served(ep, ca, pair):
                return served(ep, ca, pair, tc.probe_peer)

            tc.wait_until(lambda: len(writer.acked) > 20, 30, "writes under CA-old")

            # 1. Every bundle holds CA-old and CA-new: CA-new certificates are served too.
            write_in_place(pki["both"], live["ca"])
            for ep, peer in zip(eps, peers):
                tc.wait_until(lambda: client_served(ep, pki["both"], pki["client_new"]), 15,
                              "a CA-new client served by " + ep)
                tc.wait_until(lambda: peer_served(peer, pki["both"], pki["server_new"]), 15,
                              "a CA-new peer served by " + peer)

            # 2. The members' certificates replaced by CA-new ones, in place (certificate first,
            # so for a moment key and certificate do not match: that set is not taken).
            write_in_place(pki["server_new"][0], live["cert"])
            time.sleep(1.5)  # let a member look at the mismatched pair (not a synchronisation)
            write_in_place(pki["server_new"][1], live["key"])
            for ep, peer in zip(eps, peers):
                tc.wait_until(lambda: client_served(ep, pki["new"][0], pki["client_new"]), 15,
                              "%s presenting its CA-new certificate" % ep)
                tc.wait_until(lambda: peer_served(peer, pki["new"][0], pki["server_new"]), 15,
                              "%s presenting its CA-new peer certificate" % peer)

            # 3. Clients switched to CA-new certificates; CA-old ones are still served.
            writer.identity = (pki["both"],) + pki["client_new"]
            ctls.client_cert, ctls.client_key = pki["client_new"]
            t_overlap = time.time()
            for ep in eps:
                assert client_served(ep, pki["both"], pki["client_old"]), ep
            tc.wait_until(lambda: old_client.answered_after(t_overlap), 10,
                          "the connected CA-old client served during the overlap")
            tc.wait_until(lambda: old_peer.answered_after(t_overlap), 10,
                          "the connected CA-old peer served during the overlap")
            before_cutover = len(writer.acked)
            tc.wait_until(lambda: len(writer.acked) > before_cutover + 20, 30,
                          "writes with CA-new client certificates")

            # 4. CA-old removed from the bundles.
            write_in_place(pki["new"][0], live["ca"])
            t_cut = time.time()
            for ep, peer in zip(eps, peers):
                tc.wait_until(lambda: not client_served(ep, pki["both"], pki["client_old"]), 10,
                              "a new CA-old client refused by " + ep)
                tc.wait_until(lambda: not peer_served(peer, pki["both"], pki["server_old"]), 10,
                              "a new CA-old peer refused by " + peer)
                assert client_served(ep, pki["new"][0], pki["client_new"]), ep
                assert peer_served(peer, pki["new"][0], pki["server_new"]), peer
            # The connections opened under CA-old are cut within the bound and stay cut: watched
            # until the bound has passed and then for one more connection age, no call after the
            # bound is answered (one answered around a reconnect before the new bundle was
            # active is within the bound).
            tc.wait_until(lambda: time.time() > t_cut + CUT_BOUND + AGE + GRACE,
                          CUT_BOUND + AGE + GRACE + 5, "the watch window")
            for who, pinger in (("client", old_client), ("peer", old_peer)):
                assert pinger.last_answer_after(t_cut) < CUT_BOUND, (
                    "the CA-old %s was still answered %.1fs after the CA was removed" %
                    (who, pinger.last_answer_after(t_cut)))
                assert pinger.refusals_after(t_cut + CUT_BOUND) > 0, who
            after_cut = len(writer.acked)
            tc.wait_until(lambda: len(writer.acked) > after_cut + 20, 30,
                          "writes after CA-old was removed")
        finally:
            writer.stop()
            old_client.stop()
            old_peer.stop()

        # Nothing restarted; every acknowledged write reads back; failures bounded.
        assert [m.proc.pid for m in c.members] == pids and all(m.alive() for m in c.members)
        stored = c.all_keys()
        lost = [k for k, v in writer.acked.items() if stored.get(k, (b"",))[0] != v.encode()]
        assert not lost, "acknowledged writes lost: %s" % lost[:10]
        print("rotation: %d writes acknowledged, %d failed of %d; CA-old client last answered "
              "%.1fs and peer %.1fs after the CA was removed" % (
                  len(writer.acked), len(writer.failures), writer.attempts,
                  old_client.last_answer_after(t_cut), old_peer.last_answer_after(t_cut)))
        assert len(writer.failures) <= max(5, writer.attempts // 20), writer.failures[:10]


def test_a_certificate_revoked_while_the_member_runs_is_refused_on_its_next_connection(pki):
    d, ca = pki["dir"], pki["old"]
    member = certs.make_cert(d, "member", ca)
    good, bad = certs.make_cert(d, "good", ca), certs.make_cert(d, "bad", ca)
    crl = certs.crl(d, ca, os.path.join(d, "live", "ca.crl"))
    ctls = harness.ClientTls(ca[0], member[0], member[1], *good)
    ptls = harness.PeerTls(ca[0], member[0], member[1])
    c = harness.Cluster(1, client_tls=ctls, peer_tls=ptls,
                        extra=["--client-crl-file", crl, "--peer-crl-file", crl])
    with c:
        m = c.members[0]
        peer = "127.0.0.1:%d" % m.peer_port

        def client_served(pair):
            ch = tc.channel(m.endpoint, ca[0], *pair)
            try:
                return tc.answered(lambda ch: tc.put(ch, "crl", "x"), ch)
            finally:
                ch.close()

        def peer_served(pair):
            ch = tc.channel(peer, ca[0], *pair)
            try:
                return tc.answered(tc.probe_peer, ch)
            finally:
                ch.close()

        assert client_served(bad) and peer_served(bad), "not revoked yet: served"
        certs.revoke(d, ca, bad[0])
        certs.crl(d, ca, crl)  # the CRL file rewritten under the running member
        tc.wait_until(lambda: not client_served(bad), 10, "the revoked client refused")
        tc.wait_until(lambda: not peer_served(bad), 10, "the revoked peer refused")
        assert client_served(good) and peer_served(good), "others are still served"
        log = m.log()
        assert "refused a TLS client" in log and "is revoked by the CRL" in log and "CN=bad" in log


def test_bad_files_written_in_place_keep_the_last_good_material(pki):
    live, d = pki["live"], pki["dir"]
    copy(pki["old"][0], live["ca"])
    copy(pki["server_old"][0], live["cert"])
    copy(pki["server_old"][1], live["key"])
    ctls = harness.ClientTls(live["ca"], live["cert"], live["key"], *pki["client_old"])
    with harness.Cluster(1, client_tls=ctls) as c:
        m = c.members[0]

        def served():
            ch = tc.channel(m.endpoint, pki["old"][0], *pki["client_old"])
            try:
                return tc.answered(lambda ch: tc.put(ch, "k", "v"), ch)
            finally:
                ch.close()

        # A truncated certificate, then a key that is not the certificate's, then an unreadable
        # CA file: each refused (logged), and new connections still get the last good material.
        cert_bytes = open(pki["server_old"][0], "rb").read()
        with open(live["cert"], "wb") as f:
            f.write(cert_bytes[: len(cert_bytes) // 2])
        tc.wait_until(lambda: "certificate file %s: no PEM certificate" % live["cert"] in m.log(),
                      10, "the truncated file seen")
        assert served()
        copy(pki["server_old"][0], live["cert"])
        write_in_place(pki["server_new"][1], live["key"])
        tc.wait_until(lambda: "does not match the certificate" in m.log(), 10,
                      "the mismatched key seen")
        assert served()
        copy(pki["server_old"][1], live["key"])
        os.chmod(live["ca"], 0)
        if os.access(live["ca"], os.R_OK):  # root reads it anyway: remove it instead
            os.unlink(live["ca"])
        tc.wait_until(lambda: "cannot be read" in m.log(), 10, "the unreadable CA file seen")
        assert served()
        assert m.alive()
        assert "kept the last good certificate, key and CAs" in m.log()
