"""Test certificates made by the `openssl` CLI in a directory the caller owns (never committed):
CAs, certificates they sign for members (with IP and DNS names) and for clients, certificates
valid only in the past or the future, and CRLs."""
import os
import subprocess


def _openssl(directory, *args):
    r = subprocess.run(["openssl"] + list(args), cwd=directory, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr))


def _ca_config(directory, ca_cert):
    """The `openssl ca` configuration of a CA (its database of issued and revoked
    certificates sits beside its certificate); made on first use."""
    base = os.path.splitext(ca_cert)[0]
    conf = base + ".conf"
    if not os.path.exists(conf):
        open(base + ".index", "w").close()
        with open(base + ".crlnumber", "w") as f:
            f.write("01\n")
        with open(base + ".serial", "w") as f:
            f.write("1000\n")
        with open(conf, "w") as f:
            f.write("[ca]\ndefault_ca=d\n[d]\ndatabase=%s.index\ncrlnumber=%s.crlnumber\n"
                    "serial=%s.serial\nnew_certs_dir=%s\ndefault_md=sha256\n"
                    "default_crl_days=2\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n"
                    % (base, base, base, directory))
    return conf


def make_ca(directory, name, days=2):
    """A self-signed CA; returns (certificate path, key path)."""
    _openssl(directory, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days),
             "-subj", "/CN=" + name, "-keyout", name + ".key", "-out", name + ".crt")
    return os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")


def make_cert(directory, name, ca, hosts=("127.0.0.1", "localhost"), days=2, valid=None):
    """A certificate for CN=`name` signed by `ca` (a make_ca result), valid for `hosts` (IP or
    DNS names; both server and client use); returns (certificate path, key path).
    `valid`: (not before, not after) as openssl's YYYYMMDDHHMMSSZ, for a certificate that has
    expired or is not valid yet (default: from now for `days`)."""
    ca_cert, ca_key = ca
    sans = ",".join(("IP:" if h.replace(".", "").isdigit() else "DNS:") + h for h in hosts)
    with open(os.path.join(directory, name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n" % sans)
    _openssl(directory, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name,
             "-keyout", name + ".key", "-out", name + ".csr")
    if valid:
        dates = ["-startdate", valid[0], "-enddate", valid[1]]
    else:
        dates = ["-days", str(days)]
    # `openssl ca` records the certificate, so revoke() can put it on the CA's CRL.
    _openssl(directory, "ca", "-batch", "-config", _ca_config(directory, ca_cert), "-cert",
             ca_cert, "-keyfile", ca_key, "-in", name + ".csr", "-out", name + ".crt",
             "-extfile", name + ".ext", "-notext", *dates)
    return os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")


def crl(directory, ca, out):
    """Writes `ca`'s current CRL (every certificate revoke() revoked) to `out`; returns it."""
    ca_cert, ca_key = ca
    _openssl(directory, "ca", "-config", _ca_config(directory, ca_cert), "-cert", ca_cert,
             "-keyfile", ca_key, "-gencrl", "-out", out)
    return out


def revoke(directory, ca, cert):
    """Marks `cert` (a make_cert result's certificate path) revoked in `ca`'s database; the next
    crl() lists it."""
    ca_cert, ca_key = ca
    _openssl(directory, "ca", "-config", _ca_config(directory, ca_cert), "-cert", ca_cert,
             "-keyfile", ca_key, "-revoke", cert)


def bundle(out, *certs):
    """Writes the certificates (paths) one after another into `out` (a CA bundle); returns it."""
    with open(out, "wb") as f:
        for c in certs:
            with open(c, "rb") as g:
                f.write(g.read())
    return out
