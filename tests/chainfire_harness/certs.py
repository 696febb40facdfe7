"""Test certificates made by the `openssl` CLI in a directory the caller owns (never committed):
CAs, and certificates they sign for members (with IP and DNS names) and for clients."""
import os
import subprocess


def _openssl(directory, *args):
    r = subprocess.run(["openssl"] + list(args), cwd=directory, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr))


def make_ca(directory, name, days=2):
    """A self-signed CA; returns (certificate path, key path)."""
    _openssl(directory, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days),
             "-subj", "/CN=" + name, "-keyout", name + ".key", "-out", name + ".crt")
    return os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")


def make_cert(directory, name, ca, hosts=("127.0.0.1", "localhost"), days=2):
    """A certificate for CN=`name` signed by `ca` (a make_ca result), valid for `hosts` (IP or
    DNS names; both server and client use); returns (certificate path, key path)."""
    ca_cert, ca_key = ca
    sans = ",".join(("IP:" if h.replace(".", "").isdigit() else "DNS:") + h for h in hosts)
    with open(os.path.join(directory, name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n" % sans)
    _openssl(directory, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name,
             "-keyout", name + ".key", "-out", name + ".csr")
    _openssl(directory, "x509", "-req", "-in", name + ".csr", "-CA", ca_cert, "-CAkey", ca_key,
             "-CAcreateserial", "-days", str(days), "-extfile", name + ".ext",
             "-out", name + ".crt")
    return os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")
