"""Redis for the tests of RedisTransport.

The tests run against ``TRIOFLOW_TEST_REDIS`` (a URL; ``.ci/run`` starts a private server
and sets it) or, without it, against a private ``redis-server`` that this session starts on
a free loopback port when the program is installed. With neither, they skip, saying why;
with ``TRIOFLOW_REQUIRE_REDIS=1`` (set by CI) they fail instead, so CI never passes by
skipping them. Each test gets a namespace of its own, so they share one server.
"""

from __future__ import annotations

import gc
import itertools
import os
import shutil
import urllib.parse
import warnings
from collections.abc import Iterator

import pytest

from ._server import ping, redis_server

_namespaces = itertools.count(1)


def _unavailable(reason: str) -> None:
    if os.environ.get("TRIOFLOW_REQUIRE_REDIS") == "1":
        pytest.fail(f"{reason}, and TRIOFLOW_REQUIRE_REDIS=1 says the Redis tests must run")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a Redis server for the tests (see the module docstring)."""
    url = os.environ.get("TRIOFLOW_TEST_REDIS")
    if url:
        parts = urllib.parse.urlsplit(url)
        if not ping(parts.hostname or "127.0.0.1", parts.port or 6379):
            _unavailable(f"no Redis answers at TRIOFLOW_TEST_REDIS={url}")
        yield url
        return
    if shutil.which("redis-server") is None:
        _unavailable(
            "no Redis server: set TRIOFLOW_TEST_REDIS=redis://host:port, or install "
            "redis-server (apt-get install -y redis-server) for a private one"
        )
    with redis_server() as server:
        yield server.url


@pytest.fixture
def ns() -> str:
    """A namespace of the test's own."""
    return f"test-{os.getpid()}-{next(_namespaces)}"


@pytest.fixture
def redis_server_bin() -> None:
    """For tests that start (and kill) servers of their own."""
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed (apt-get install -y redis-server)")


@pytest.fixture(autouse=True)
def _collect_coredis_garbage() -> Iterator[None]:
    """coredis 6.9 leaves the anyio memory streams of a connection unclosed when the
    connection is dropped under it (a killed server, a client torn down by a cancel); they
    warn when collected. Collect them here, where the warning is expected and ignored,
    rather than in whichever later test the garbage collector happens to run."""
    yield
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Unclosed <MemoryObject", ResourceWarning)
        gc.collect()
