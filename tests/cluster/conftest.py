"""Fixtures shared by the multi-process tests."""
import contextlib

import pytest

from chainfire_harness import cluster as harness


@pytest.fixture
def clients():
    """`clients(port)` makes a python-etcd3 client that is closed when the test ends (see
    harness.etcd_client: an open watch stream at interpreter exit can crash the interpreter)."""
    with contextlib.ExitStack() as stack:
        yield lambda port, **kw: stack.enter_context(harness.etcd_client(port, **kw))


def pytest_configure(config):
    # A closed client's watch thread ends by calling Watch on the closed channel (python-etcd3
    # loops until then); that ValueError is the expected end of the thread, not a failure.
    config.addinivalue_line(
        "filterwarnings", r"ignore:Exception in thread etcd3_watch_[\s\S]*Channel closed!"
        ":pytest.PytestUnhandledThreadExceptionWarning")
