"""A web crawler written with trioflow, to compare with ``crawler_trio.py``.

It crawls a small generated site that it serves itself on 127.0.0.1 (``_site.py``): fetch
each page with ``httpx``, at most ``per_host`` requests at once and ``per_second`` a second
per host, each attempt within ``attempt_timeout`` seconds, retrying 503s, timeouts and
broken connections (not 404s) with exponential backoff; parse its links and count its
words; follow the links it has not seen; sum up the pages that loaded and those that did
not. The live monitor shows the run (plain lines when the output is not a terminal).

Run it: ``python docs/examples/crawler_trioflow.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from urllib.parse import urljoin, urlsplit

import httpx
import outcome
import trio
from _site import make_site, open_site

from trioflow import Pool, RetryPolicy, TaskHandle, open_scheduler, settled
from trioflow.monitor import open_monitor

LINK = re.compile(r'href="([^"]+)"')
TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Page:
    url: str
    links: list[str]
    words: int


@dataclass(frozen=True)
class Report:
    ok: frozenset[str] = frozenset()
    failed: dict[str, str] = field(default_factory=dict)  # url: why
    words: int = 0
    elapsed: float = 0.0

    def __add__(self, other: Report) -> Report:
        return Report(self.ok | other.ok, self.failed | other.failed, self.words + other.words)


def parse(url: str, html: str) -> Page:
    links = [urljoin(url, href) for href in LINK.findall(html)]
    return Page(url, links, len(TAG.sub(" ", html).split()))


def retryable(error: BaseException) -> bool:
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code == 503
    return isinstance(error, TimeoutError | httpx.TransportError)


def why(error: BaseException) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    return "timeout" if isinstance(error, TimeoutError) else repr(error)


async def fetch(client: httpx.AsyncClient, url: str) -> Page:
    response = (await client.get(url)).raise_for_status()
    return parse(url, response.text)


async def crawl(
    base_url: str,
    *,
    per_host: int = 3,
    per_second: float = 20.0,
    attempt_timeout: float = 0.5,
    retries: int = 3,
    max_workers: int = 32,
) -> Report:
    """Crawl every page reachable from ``base_url``; report what loaded and what did not."""
    retry = RetryPolicy(max_retries=retries, delay=0.05, retry_on=retryable)
    pools: dict[str, Pool] = {}
    seen = {base_url}

    async with (
        open_monitor() as monitor,
        httpx.AsyncClient() as client,
        open_scheduler(max_workers=max_workers) as sched,
    ):
        monitor.attach(sched)

        def follow(url: str) -> TaskHandle[Report]:
            """Fetch a page in its host's pool, then visit it, whether it loaded or not."""
            seen.add(url)
            pool = pools.setdefault(urlsplit(url).netloc, Pool(per_host, per_second))
            page = sched.submit(
                fetch, client, url, id=url, pool=pool, timeout=attempt_timeout, retry=retry
            )
            return sched.submit(visit, url, settled(page), id=f"visit {url}")

        async def visit(url: str, page: outcome.Maybe[Page]) -> Report:
            """The report on a page and on the new pages it links to, crawled as sub-tasks."""
            if isinstance(page, outcome.Error):
                return Report(failed={url: why(page.error)})
            links = [follow(link) for link in page.value.links if link not in seen]
            return sum(await sched.gather(*links), Report(frozenset({url}), words=page.value.words))

        report = await follow(base_url).wait()
    return replace(report, elapsed=sched.stats().elapsed)


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
