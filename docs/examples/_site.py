"""A small generated web site, served on 127.0.0.1, for the crawler examples to crawl.

Not part of the comparison: both crawlers (``crawler_trioflow.py`` and ``crawler_trio.py``)
crawl the same site. It is generated from a seed, so the pages, their links and what each
one does are the same on every run; only the latency of each answer is random.

Each of the site's hosts is one listener on 127.0.0.1 on a free port, so ``127.0.0.1:5001``
and ``127.0.0.1:5002`` are two hosts to a crawler that limits its requests per host. A page
links to pages on its own host (a relative link) and on the others (an absolute one). What a
page does when it is requested:

* ``OK``: answers with the page, after a random latency.
* ``FLAKY``: answers ``503 Service Unavailable`` the first ``failures`` times, then the page.
* ``SLOW_ONCE``: never answers its first request, then answers the page.
* ``HANG``: never answers at all.
* ``MISSING``: answers ``404 Not Found``, every time (as does a path the site does not know).

A request that never gets an answer lasts until the client gives up and closes its
connection (the server notices that at once: it waits on the connection, not on a timer),
so the server's own record of the requests in flight is what the client really had open.

The server is a plain ``trio.serve_tcp`` HTTP/1.1 responder: it reads one request per
connection and answers it with ``Connection: close``. It records every request
(:attr:`RunningSite.log`) and, per host, the most requests it ever had in flight at once
(:attr:`RunningSite.most_in_flight`), so tests can check a crawler's limits from the
server's side.
"""

from __future__ import annotations

import contextlib
import enum
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import trio

__all__ = ["Kind", "PageSpec", "Request", "RunningSite", "Site", "make_site", "open_site"]

#: How long an unanswered request waits for its client to give up before the server does.
HANG_LIMIT = 60.0
#: The largest request head the server reads.
MAX_HEAD = 16 * 1024

#: The words of the pages' texts.
VOCABULARY = "trio nursery cancel scope task deadline retry pool limit crawl parse host".split()  # noqa: SIM905


class Kind(enum.Enum):
    """What a page does when it is requested (see the module's docstring)."""

    OK = "ok"
    FLAKY = "flaky"
    SLOW_ONCE = "slow once"
    HANG = "hang"
    MISSING = "missing"


#: The kinds whose page a crawler that retries 503s and timeouts (3 times) gets in the end.
LOADS = frozenset({Kind.OK, Kind.FLAKY, Kind.SLOW_ONCE})


@dataclass(frozen=True)
class PageSpec:
    """One page: where it is, what it does, its text and its links (``(host, path)``)."""

    host: int
    path: str
    kind: Kind
    text: tuple[str, ...] = ()
    links: tuple[tuple[int, str], ...] = ()
    failures: int = 0  # FLAKY: how many 503 answers before the page

    @property
    def words(self) -> int:
        """Words in the page's text, its links' texts included (one word each)."""
        return len(self.text) + len(self.links)


@dataclass(frozen=True)
class Site:
    """The pages of a generated site, by ``(host, path)``; the root is ``(0, "/")``."""

    hosts: int
    pages: dict[tuple[int, str], PageSpec]

    def render(self, page: PageSpec, netlocs: list[str]) -> str:
        """The page's HTML, with links to other hosts made absolute with their netlocs."""
        anchors = []
        for host, path in page.links:
            href = path if host == page.host else f"http://{netlocs[host]}{path}"
            anchors.append(f'<li><a href="{href}">{path.rsplit("/", 1)[-1] or "home"}</a></li>')
        return (
            f"<!doctype html><html><body><p>{' '.join(page.text)}</p>"
            f"<ul>{''.join(anchors)}</ul></body></html>"
        )


def make_site(seed: int = 0, pages: int = 40, hosts: int = 2) -> Site:
    """Generate a site of ``pages`` pages over ``hosts`` hosts, the same for the same seed.

    Every kind of page is there at least once (given ``pages >= 6``), and every page is
    linked from a page generated before it that loads in the end, so a crawler that
    retries 503s and timeouts reaches all of them.
    """
    if pages < 6 or hosts < 1:
        raise ValueError("a site needs at least 6 pages and 1 host")
    rng = random.Random(seed)
    kinds = [Kind.FLAKY, Kind.SLOW_ONCE, Kind.HANG, Kind.MISSING]
    kinds += rng.choices(
        list(Kind), weights=[70, 10, 5, 7, 8], k=pages - 1 - len(kinds)
    )  # the root is the one more
    rng.shuffle(kinds)
    specs = [(0, "/", Kind.OK)] + [
        (i % hosts, f"/page/{i}", kind) for i, kind in enumerate(kinds, start=1)
    ]
    links: dict[int, list[tuple[int, str]]] = {i: [] for i in range(pages)}
    for i in range(1, pages):
        loading = [j for j in range(i) if specs[j][2] in LOADS]
        links[rng.choice(loading)].append(specs[i][:2])
    for i in range(pages):
        for _ in range(rng.randint(0, 2)):  # more links: across, back, to itself, twice
            links[i].append(specs[rng.randrange(pages)][:2])
    site: dict[tuple[int, str], PageSpec] = {}
    for i, (host, path, kind) in enumerate(specs):
        site[host, path] = PageSpec(
            host,
            path,
            kind,
            text=tuple(rng.choices(VOCABULARY, k=rng.randint(5, 40))),
            links=tuple(links[i]) if kind is not Kind.MISSING else (),
            failures=rng.randint(1, 2) if kind is Kind.FLAKY else 0,
        )
    return Site(hosts, site)


@dataclass(frozen=True)
class Request:
    """One request as the server saw it: ``status`` is ``None`` when it was never answered;
    ``arrived`` and ``ended`` are ``trio.current_time()`` when its head had been read and
    when its answer was about to be written (or its client went away)."""

    host: int
    path: str
    attempt: int
    status: int | None
    arrived: float
    ended: float


@dataclass
class RunningSite:
    """A site being served: its URLs, and what it has seen so far."""

    site: Site
    netlocs: list[str]
    max_latency: float
    rng: random.Random
    log: list[Request] = field(default_factory=list)
    in_flight: Counter[int] = field(default_factory=Counter)
    most_in_flight: Counter[int] = field(default_factory=Counter)
    attempts: Counter[tuple[int, str]] = field(default_factory=Counter)

    @property
    def base_url(self) -> str:
        """The root page's URL."""
        return self.url(0, "/")

    def url(self, host: int, path: str) -> str:
        return f"http://{self.netlocs[host]}{path}"

    async def handle(self, host: int, stream: trio.SocketStream) -> None:
        """Answer one request on ``stream`` (a connection to ``host``)."""
        async with stream:
            # The client may go away first (it gave up): then there is nothing to answer.
            with contextlib.suppress(trio.BrokenResourceError):
                await self._answer(host, stream)

    async def _answer(self, host: int, stream: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
            chunk = await stream.receive_some()
            if not chunk:
                return
            head += chunk
        request_line = head.split(b"\r\n", 1)[0].split(b" ")
        if len(request_line) != 3:
            return  # not a request this server understands: hang up
        path = request_line[1].decode("ascii", "replace")
        arrived = trio.current_time()
        self.attempts[host, path] += 1
        attempt = self.attempts[host, path]
        self.in_flight[host] += 1
        self.most_in_flight[host] = max(self.most_in_flight[host], self.in_flight[host])
        status: int | None = None
        try:
            await trio.sleep(self.rng.uniform(0, self.max_latency))
            page = self.site.pages.get((host, path)) or PageSpec(host, path, Kind.MISSING)
            if page.kind is Kind.HANG or (page.kind is Kind.SLOW_ONCE and attempt == 1):
                await self._until_the_client_leaves(stream)
                return
            if page.kind is Kind.MISSING:
                status, body = 404, "<!doctype html><p>no such page</p>"
            elif page.kind is Kind.FLAKY and attempt <= page.failures:
                status, body = 503, "<!doctype html><p>busy, try again</p>"
            else:
                status, body = 200, self.site.render(page, self.netlocs)
        finally:
            self.in_flight[host] -= 1
            self.log.append(Request(host, path, attempt, status, arrived, trio.current_time()))
        reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
        data = body.encode()
        await stream.send_all(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
            + data
        )

    async def _until_the_client_leaves(self, stream: trio.SocketStream) -> None:
        with trio.move_on_after(HANG_LIMIT):
            while await stream.receive_some():
                pass  # (a well-behaved client sends nothing more: this is its goodbye)


@asynccontextmanager
async def open_site(
    site: Site, *, seed: int = 0, max_latency: float = 0.05
) -> AsyncIterator[RunningSite]:
    """Serve ``site`` on 127.0.0.1, one free port per host, until the block ends.

    Args:
        site: what to serve (:func:`make_site`).
        seed: seeds the random latency of the answers.
        max_latency: each answer waits a random time up to this long.
    """
    async with trio.open_nursery() as nursery:
        running = RunningSite(site, [], max_latency, random.Random(seed))
        for host in range(site.hosts):
            listeners = await nursery.start(
                partial(trio.serve_tcp, partial(running.handle, host), 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            running.netlocs.append(f"127.0.0.1:{port}")
        yield running
        nursery.cancel_scope.cancel()
