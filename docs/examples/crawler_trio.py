"""A web crawler written with plain trio, to compare with ``crawler_trioflow.py``.

It crawls a small generated site that it serves itself on 127.0.0.1 (``_site.py``): fetch
each page with ``httpx``, at most ``per_host`` requests at once and ``per_second`` a second
per host, each attempt within ``timeout`` seconds, retrying 503s, timeouts and broken
connections (not 404s) with exponential backoff; parse its links and count its words;
follow the links it has not seen; sum up the pages that loaded and those that did not.

Run it: ``python docs/examples/crawler_trio.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx
import trio
from _site import make_site, open_site

LINK = re.compile(r'href="([^"]+)"')
TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Page:
    url: str
    links: list[str]
    words: int


@dataclass(frozen=True)
class Report:
    ok: frozenset[str]
    failed: dict[str, str]  # url: why
    words: int
    elapsed: float


def parse(url: str, html: str) -> Page:
    links = [urljoin(url, href) for href in LINK.findall(html)]
    return Page(url, links, len(TAG.sub(" ", html).split()))


def retryable(error: Exception) -> bool:
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code == 503
    return isinstance(error, trio.TooSlowError | httpx.TransportError)


def why(error: Exception) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    return "timeout" if isinstance(error, trio.TooSlowError) else repr(error)


class HostLimit:
    """At most ``concurrent`` requests at once, starting at most ``per_second`` a second,
    evenly spaced (no burst after a quiet spell)."""

    def __init__(self, concurrent: int, per_second: float) -> None:
        self._slots = trio.CapacityLimiter(concurrent)
        self._interval = 1 / per_second
        self._next_start = -math.inf
        self._lock = trio.Lock()  # fair: callers start in the order they came

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            async with self._lock:
                await trio.sleep_until(self._next_start)
                self._next_start = trio.current_time() + self._interval
            yield


async def fetch(
    client: httpx.AsyncClient, url: str, host: HostLimit, attempt_timeout: float, retries: int
) -> Page:
    """Get and parse one page; each attempt takes a slot of its host and has a deadline."""
    for attempt in range(retries + 1):
        try:
            async with host.slot():
                with trio.fail_after(attempt_timeout):
                    response = (await client.get(url)).raise_for_status()
            return parse(url, response.text)
        except (httpx.HTTPError, trio.TooSlowError) as error:
            if attempt == retries or not retryable(error):
                raise
        await trio.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


async def crawl(
    base_url: str,
    *,
    per_host: int = 3,
    per_second: float = 20.0,
    attempt_timeout: float = 0.5,
    retries: int = 3,
) -> Report:
    """Crawl every page reachable from ``base_url``; report what loaded and what did not."""
    started = trio.current_time()
    hosts: dict[str, HostLimit] = {}
    seen = {base_url}
    ok: set[str] = set()
    failed: dict[str, str] = {}
    words = 0

    async with httpx.AsyncClient() as client, trio.open_nursery() as nursery:

        async def visit(url: str) -> None:
            nonlocal words
            try:
                host = hosts.setdefault(urlsplit(url).netloc, HostLimit(per_host, per_second))
                page = await fetch(client, url, host, attempt_timeout, retries)
            except (httpx.HTTPError, trio.TooSlowError) as error:
                failed[url] = why(error)
                print(f"failed: {url}: {failed[url]}")
                return
            ok.add(url)
            words += page.words
            for link in page.links:
                if link not in seen:
                    seen.add(link)
                    nursery.start_soon(visit, link)

        nursery.start_soon(visit, base_url)
    return Report(frozenset(ok), failed, words, trio.current_time() - started)


def print_report(report: Report) -> None:
    print(f"pages ok: {len(report.ok)}, failed: {len(report.failed)}")
    for url, reason in sorted(report.failed.items()):
        print(f"  {url}: {reason}")
    print(f"words: {report.words}, time: {report.elapsed:.2f} s")


async def demo() -> None:
    async with open_site(make_site(seed=1)) as site:
        report = await crawl(site.base_url)
    print_report(report)


def main() -> None:
    trio.run(demo)


if __name__ == "__main__":
    main()
