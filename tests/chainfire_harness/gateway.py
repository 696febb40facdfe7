"""A client of etcd's v3 JSON gateway (the HTTP side of a client port) for the tests, and the
masking that makes ChainFire's and etcd's answers comparable: what legitimately differs
between two clusters (their IDs, terms, lease IDs, sizes, hashes, tokens, versions) is
replaced by a placeholder, everything else is compared as it is."""
import http.client
import json
import socket

# Fields whose values differ between any two clusters, wherever they appear.
MASKED_KEYS = {
    "cluster_id", "member_id", "raft_term",  # ResponseHeader
    "ID", "leader", "memberID",  # member and lease IDs
    "dbSize", "dbSizeInUse", "raftIndex", "raftTerm", "raftAppliedIndex", "version_cluster",
    "hash", "token", "blob", "remaining_bytes", "peerURLs", "clientURLs", "name",
    "etcdserver", "etcdcluster",
}
# Status.version: etcd says 3.4.23, ChainFire the API level it serves (3.4.0).
MASKED_IN = {"version": ("header", "kvs", "kv", "prev_kv", "events")}


def mask(value, parent=None):
    """`value` (decoded JSON) with the cluster-specific fields replaced by "<masked>"."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in MASKED_KEYS:
                out[k] = "<masked>"
            elif k == "version" and parent is None and isinstance(v, str) and "." in v:
                out[k] = "<masked>"  # StatusResponse.version (a kv's version is a number)
            else:
                out[k] = mask(v, k)
        return out
    if isinstance(value, list):
        return [mask(v, parent) for v in value]
    return value


def parse_body(raw):
    """Decoded JSON of a body, or the text when it is not JSON."""
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_stream(raw):
    """The objects of a gateway stream: one JSON object per line, and possibly a final error
    object without a newline after it."""
    text = raw.decode("utf-8", "replace")
    decoder = json.JSONDecoder()
    out, at = [], 0
    while True:
        while at < len(text) and text[at] in " \r\n\t":
            at += 1
        if at >= len(text):
            return out
        value, at = decoder.raw_decode(text, at)
        out.append(value)


class Gateway:
    """HTTP/1.1 to one endpoint ("127.0.0.1:port"), one keep-alive connection."""

    def __init__(self, endpoint, timeout=10, prefix="/v3/", token=None):
        host, port = endpoint.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.timeout = timeout
        self.prefix = prefix
        self.token = token
        self.conn = None

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None):
        """(status, headers dict, raw body) of one request on the kept-alive connection."""
        hdrs = dict(headers or {})
        if self.token and "Authorization" not in hdrs:
            hdrs["Authorization"] = self.token
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise

    def post(self, rpc_path, body=None, **kw):
        """(status, decoded body) of POST <prefix><rpc_path> with `body` (a dict, or raw text)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        status, _, data = self.request("POST", self.prefix + rpc_path, body=body or "", **kw)
        return status, parse_body(data)

    def call(self, rpc_path, body=None):
        """The decoded answer of a call that must succeed."""
        status, answer = self.post(rpc_path, body)
        if status != 200:
            raise AssertionError("%s -> %d %r" % (rpc_path, status, answer))
        return answer

    def stream(self, rpc_path, body, count=None, timeout=5):
        """(status, objects) of a streaming call: reads until the stream ends, `count` objects
        arrived, or `timeout` passes; then drops the connection (as Patroni does to a watch)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        headers = {"Authorization": self.token} if self.token else {}
        try:
            conn.request("POST", self.prefix + rpc_path, body=body, headers=headers)
            resp = conn.getresponse()
            objects, buf = [], b""
            try:
                while count is None or len(objects) < count:
                    line = resp.readline()
                    if not line:
                        break
                    buf += line
                    if line.endswith(b"\n"):
                        objects.extend(parse_stream(buf))
                        buf = b""
            except (socket.timeout, TimeoutError):
                pass
            if buf:
                objects.extend(parse_stream(buf))
            return resp.status, objects
        finally:
            conn.close()
