"""Patroni (Debian's patroni 3.0) running PostgreSQL 15 with ChainFire as its etcd v3 store:
nodes on loopback ports, run as the `postgres` user when the tests run as root (initdb refuses
root), every process stopped by the harness, every wait bounded."""
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
import urllib.request

from chainfire_harness.probes import HarnessError, free_ports

PG_BIN = "/usr/lib/postgresql/15/bin"


def available():
    """Why Patroni cannot run here, or None when it can."""
    if shutil.which("patroni") is None or shutil.which("patronictl") is None:
        return "patroni is not installed"
    if not os.path.exists(os.path.join(PG_BIN, "postgres")):
        return "postgresql-15 is not installed"
    if shutil.which("psql") is None:
        return "psql is not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user"
    elif not os.access("/dev/shm", os.W_OK):
        return "/dev/shm is not writable (Patroni needs POSIX semaphores)"
    return None


def run_as_postgres(cmd):
    """`cmd` to run as the postgres user (when root) or as ourselves."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


def ensure_posix_shm():
    """Patroni (Python's multiprocessing) needs POSIX semaphores, which live in /dev/shm: on
    every Linux system a world-writable (1777) tmpfs. A chroot whose /dev is a plain bind mount
    of the host's (the fresh-machine check's) shows the directory under that tmpfs instead,
    root's with mode 0755, where the postgres user cannot create one: give it its standard
    mode (nothing else reaches that hidden directory)."""
    mode = os.stat("/dev/shm").st_mode & 0o7777
    if mode & 0o777 != 0o777 and os.geteuid() == 0:
        os.chmod("/dev/shm", 0o1777)


def clean_env():
    """The environment for Patroni's programs: not the tests' PYTHONPATH, whose generated
    `etcd` package would shadow python3-etcd, which Patroni imports."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def chown_to_postgres(path):
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for root, dirs, files in os.walk(path):
            os.chown(root, pw.pw_uid, pw.pw_gid)
            for f in files:
                os.chown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)


def parse_list(text):
    """`patronictl list --format json` output -> {member name: {"role":..., "state":...}}."""
    members = json.loads(text)
    return {m["Member"]: {"role": m.get("Role"), "state": m.get("State"),
                          "lag": m.get("Lag in MB"), "tl": m.get("TL")} for m in members}


class PatroniNode:
    """One Patroni + PostgreSQL node. `hosts`: "127.0.0.1:p1,127.0.0.1:p2,..." of ChainFire."""

    def __init__(self, root, scope, name, hosts, ttl=10, loop_wait=1, retry_timeout=4,
                 username=None, password=None):
        self.root, self.scope, self.name = root, scope, name
        self.dir = os.path.join(root, name)
        self.pg_port, self.api_port = free_ports(2)
        self.config_path = os.path.join(self.dir, "patroni.yml")
        self.log_path = os.path.join(self.dir, "patroni.log")
        self.proc = None
        os.makedirs(self.dir, exist_ok=True)
        etcd3 = {"hosts": hosts}
        if username:
            etcd3.update({"username": username, "password": password})
        # Written as JSON: YAML is a superset of it.
        config = {
            "scope": scope, "name": name, "namespace": "/service/",
            "restapi": {"listen": "127.0.0.1:%d" % self.api_port,
                        "connect_address": "127.0.0.1:%d" % self.api_port},
            "etcd3": etcd3,
            "bootstrap": {
                "dcs": {"ttl": ttl, "loop_wait": loop_wait, "retry_timeout": retry_timeout,
                        "maximum_lag_on_failover": 1048576,
                        "postgresql": {"use_pg_rewind": True,
                                       "parameters": {"wal_log_hints": "on"}}},
                "initdb": [{"encoding": "UTF8"}, "data-checksums"],
                "pg_hba": ["local all all trust",
                           "host replication replicator 127.0.0.1/32 md5",
                           "host all all 127.0.0.1/32 md5"],
            },
            "postgresql": {
                "listen": "127.0.0.1:%d" % self.pg_port,
                "connect_address": "127.0.0.1:%d" % self.pg_port,
                "data_dir": os.path.join(self.dir, "data"),
                "bin_dir": PG_BIN,
                "pgpass": os.path.join(self.dir, "pgpass"),
                "authentication": {
                    "replication": {"username": "replicator", "password": "rep-pw"},
                    "superuser": {"username": "postgres", "password": "pg-pw"},
                    "rewind": {"username": "rewinder", "password": "rewind-pw"},
                },
                "parameters": {"unix_socket_directories": self.dir,
                               "max_connections": 20, "shared_buffers": "16MB"},
            },
        }
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=1)

    def start(self):
        ensure_posix_shm()
        chown_to_postgres(self.dir)
        log = open(self.log_path, "ab")
        env = clean_env()
        env["PATRONI_LOG_LEVEL"] = "INFO"
        # Its own process group (runuser and Patroni: killed together), and its own directory
        # as working directory (Patroni's spawned postmaster changes into the parent's, which
        # the postgres user may not reach).
        self.proc = subprocess.Popen(run_as_postgres(["patroni", self.config_path]),
                                     stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, cwd=self.dir)
        log.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def postmaster_pid(self):
        path = os.path.join(self.dir, "data", "postmaster.pid")
        try:
            with open(path) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signals Patroni (SIGTERM through runuser, which passes it on); waits (bounded);
        kills its process group if it lingers (SIGKILL cannot be passed on: the group)."""
        if self.proc is None:
            return
        if self.proc.poll() is None and sig != signal.SIGKILL:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of the group
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self.proc = None

    def kill_hard(self):
        """kill -9 of Patroni and of the postmaster (a crashed machine)."""
        pid = self.postmaster_pid()
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
            self.proc = None
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # The postmaster's children die with it (they notice its death); wait for the port.
        deadline = time.time() + 20
        while self.postmaster_alive(pid) and time.time() < deadline:
            time.sleep(0.1)

    @staticmethod
    def postmaster_alive(pid):
        if not pid:
            return False
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False

    def cleanup(self):
        """Stops everything this node started: Patroni first (it would restart PostgreSQL),
        then the postmaster (its own session), waiting (bounded) for it to go."""
        self.stop(signal.SIGKILL)
        pid = self.postmaster_pid()
        if pid and self.postmaster_alive(pid):
            os.kill(pid, signal.SIGKILL)
            deadline = time.time() + 20
            while self.postmaster_alive(pid) and time.time() < deadline:
                time.sleep(0.1)

    def api(self, path="/patroni"):
        """Patroni's REST API answer (decoded JSON) or None."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.api_port, path),
                                        timeout=3) as r:
                return json.loads(r.read())
        except Exception:  # noqa: BLE001 - an answer or nothing
            return None

    def role(self):
        answer = self.api()
        return answer.get("role") if answer else None

    def psql(self, sql, timeout=20):
        env = dict(os.environ, PGPASSWORD="pg-pw", PGCONNECT_TIMEOUT="5")
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres",
                            "-d", "postgres", "-Atc", sql], env=env, capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise HarnessError("psql on %s: %s" % (self.name, r.stderr.strip()))
        return r.stdout.strip()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def patronictl_list(self):
        r = subprocess.run(run_as_postgres(["patronictl", "-c", self.config_path, "list",
                                            "--format", "json"]),
                           capture_output=True, text=True, timeout=30, env=clean_env(),
                           cwd=self.dir)
        if r.returncode != 0:
            raise HarnessError("patronictl list: " + r.stderr.strip())
        return parse_list(r.stdout)


def wait_for(what, condition, timeout, nodes=()):
    """Polls `condition` until it returns something true; raises naming `what` (with the tail
    of each node's log) after `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        exited = [n.name for n in nodes if n.proc is not None and n.proc.poll() is not None]
        if exited or time.time() > deadline:
            tails = "\n".join("--- %s\n%s" % (n.name, n.log()[-3000:]) for n in nodes)
            why = "Patroni exited on %s" % exited if exited else "not within %.0f s" % timeout
            raise HarnessError("%s: %s\n%s" % (what, why, tails))
        time.sleep(0.2)


def leader_of(nodes):
    """The node whose Patroni says it is the primary (and only one), or None."""
    leaders = [n for n in nodes if n.alive() and n.role() in ("master", "primary")]
    return leaders[0] if len(leaders) == 1 else None
