"""A real etcd 3.4 member (Debian's etcd-server) on loopback: the reference the differential
tests compare ChainFire with. Started on free ports, stopped (SIGKILL, bounded wait) on exit."""
import contextlib
import shutil
import signal
import subprocess
import tempfile
import time

from chainfire_harness.probes import HarnessError, etcdctl, free_ports


def etcd_binary():
    """Path of etcd, or None when etcd-server is not installed."""
    return shutil.which("etcd")


@contextlib.contextmanager
def etcd_member(*extra, metrics=False):
    """Yields (client endpoint "127.0.0.1:port", metrics port or None) of a one-member etcd
    started with `extra` flags; waits (bounded) until it answers."""
    etcd = etcd_binary()
    if etcd is None:
        raise HarnessError("etcd-server is not installed")
    client, peer, metrics_port = free_ports(3)
    with tempfile.TemporaryDirectory() as d:
        cmd = [etcd, "--name", "ref", "--data-dir", d + "/data",
               "--listen-client-urls", "http://127.0.0.1:%d" % client,
               "--advertise-client-urls", "http://127.0.0.1:%d" % client,
               "--listen-peer-urls", "http://127.0.0.1:%d" % peer,
               "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer,
               "--initial-cluster", "ref=http://127.0.0.1:%d" % peer] + list(extra)
        if metrics:
            cmd += ["--listen-metrics-urls", "http://127.0.0.1:%d" % metrics_port]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            endpoint = "127.0.0.1:%d" % client
            deadline = time.time() + 30
            while etcdctl(endpoint, "endpoint", "health", check=False, timeout=10,
                          command_timeout="2s").returncode != 0:
                if time.time() > deadline or proc.poll() is not None:
                    raise HarnessError("etcd did not become healthy within 30 s")
                time.sleep(0.2)
            yield endpoint, metrics_port if metrics else None
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
