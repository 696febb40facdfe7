"""The runbooks, run as written: every ```sh block of docs/operations.md, and of the rotation
runbook in docs/security.md, in order, from a scratch directory holding build/, scripts/, nix/
and tests/ (links to this checkout) and an empty work/. The runbooks use the documented fixed
ports (2379.., 12379; 2479.. for the TLS cluster); they lie below the kernel's ephemeral range,
so the other tests' free ports never take them."""
import os
import re
import subprocess
import tempfile

from chainfire_harness import cluster as harness

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUNBOOK = os.path.join(REPO, "docs", "operations.md")
SECURITY = os.path.join(REPO, "docs", "security.md")


def sh_blocks(markdown):
    """The bodies of the ```sh fenced blocks, in order."""
    return re.findall(r"^```sh\n(.*?)^```$", markdown, flags=re.M | re.S)


def test_sh_blocks_are_found_and_others_are_not():
    text = "a\n```sh\necho 1\n```\n```ini\n[x]\n```\n```sh\necho 2\necho 3\n```\n"
    assert sh_blocks(text) == ["echo 1\n", "echo 2\necho 3\n"]


def section(markdown, title):
    """The text of the `## title` section (up to the next `## ` heading)."""
    m = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % re.escape(title), markdown, flags=re.M | re.S)
    assert m, "no section '## %s'" % title
    return m.group(1)


def test_a_section_ends_at_the_next_heading():
    text = "## a\nx\n```sh\n1\n```\n## b\n```sh\n2\n```\n"
    assert sh_blocks(section(text, "a")) == ["1\n"]


def stop_everything(scratch):
    for mode in ([], ["--tls"]):
        subprocess.run(["bash", "scripts/local-cluster.sh", *mode, "stop"], cwd=scratch,
                       capture_output=True, timeout=60)
    for root, _, files in os.walk(os.path.join(scratch, "work")):
        for f in files:
            if f.endswith(".pid"):
                try:
                    os.kill(int(open(os.path.join(root, f)).read().strip()), 9)
                except (ValueError, OSError):
                    pass


def run_blocks(blocks):
    """Runs the blocks in order in a fresh scratch checkout; each must exit 0."""
    build = os.path.dirname(os.path.dirname(os.path.abspath(harness.CHAINFIRE)))
    with tempfile.TemporaryDirectory() as scratch:
        os.symlink(build, os.path.join(scratch, "build"))
        for name in ("scripts", "nix", "tests"):
            os.symlink(os.path.join(REPO, name), os.path.join(scratch, name))
        os.mkdir(os.path.join(scratch, "work"))
        env = dict(os.environ)
        env.pop("CHAINFIRE_BIN_DIR", None)
        env.pop("CHAINFIRE_WORK_DIR", None)
        env.pop("PYTHONPATH", None)  # the runbook's commands must find the harness themselves
        try:
            for i, block in enumerate(blocks):
                r = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=scratch,
                                   capture_output=True, text=True, timeout=300, env=env)
                assert r.returncode == 0, "block %d failed:\n%s\n--- stdout\n%s\n--- stderr\n%s" % (
                    i, block, r.stdout[-3000:], r.stderr[-3000:])
        finally:
            stop_everything(scratch)


def test_every_command_block_of_the_runbook_runs():
    blocks = sh_blocks(open(RUNBOOK).read())
    assert len(blocks) >= 10
    run_blocks(blocks)


def test_the_auth_runbook_runs():
    blocks = sh_blocks(section(open(SECURITY).read(), "Enabling auth on a live cluster (runbook)"))
    assert len(blocks) >= 5
    run_blocks(blocks)


def test_the_certificate_rotation_runbook_runs():
    blocks = sh_blocks(section(open(SECURITY).read(), "Rotating certificates (runbook)"))
    assert len(blocks) >= 6
    run_blocks(blocks)
