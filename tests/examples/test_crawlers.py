"""The crawler examples (docs/examples/), end to end against their local site.

Both crawlers crawl the same generated site, each against its own server (so each sees the
site fresh: a page that answers 503 twice does so for each crawler). The server records
every request, and per host the most requests it had in flight at once, so the limits are
checked from the server's side. The two crawls run once, side by side in one trio run, for
the whole module; each test checks one promise on what they did.

Real sockets on 127.0.0.1 and the real clock: the only timings asserted are the rate
limit's spacing (with a tolerance of one whole interval) and upper bounds in seconds.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
sys.path.insert(0, str(EXAMPLES))

import _count  # noqa: E402
import _site  # noqa: E402
import crawler_trio  # noqa: E402
import crawler_trioflow  # noqa: E402
from _site import Kind, RunningSite  # noqa: E402

SEED = 7
PAGES = 40
PER_HOST = 3
PER_SECOND = 20.0
ATTEMPT_TIMEOUT = 0.5
RETRIES = 3
#: No crawl of this site takes anywhere near this long; a crawl that does is stuck.
STUCK = 60.0

CRAWLERS = {"trioflow": crawler_trioflow.crawl, "trio": crawler_trio.crawl}
SITE = _site.make_site(seed=SEED, pages=PAGES)


@dataclass(frozen=True)
class Run:
    """One crawl: what the crawler reported, and what its server saw."""

    report: Any  # crawler_trio.Report or crawler_trioflow.Report: the same fields
    server: RunningSite

    def where(self, url: str) -> tuple[int, str]:
        """``(host, path)`` of a URL of this run's server (its ports are its own)."""
        parts = urlsplit(url)
        return self.server.netlocs.index(parts.netloc), parts.path

    @property
    def ok(self) -> set[tuple[int, str]]:
        return {self.where(url) for url in self.report.ok}

    @property
    def failed(self) -> dict[tuple[int, str], str]:
        return {self.where(url): why for url, why in self.report.failed.items()}

    def requests(self, page: _site.PageSpec) -> list[_site.Request]:
        return [r for r in self.server.log if (r.host, r.path) == (page.host, page.path)]


async def crawl_site(crawl: Callable[..., Any], **options: Any) -> Run:
    async with _site.open_site(SITE, seed=SEED) as server:
        with trio.fail_after(STUCK):
            report = await crawl(
                server.base_url,
                per_host=PER_HOST,
                per_second=PER_SECOND,
                attempt_timeout=ATTEMPT_TIMEOUT,
                retries=RETRIES,
                **options,
            )
    return Run(report, server)


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    """Both crawlers' runs, side by side in one trio run (each against its own server)."""
    done: dict[str, Run] = {}

    async def both() -> None:
        async def one(name: str) -> None:
            done[name] = await crawl_site(CRAWLERS[name])

        async with trio.open_nursery() as nursery:
            for name in CRAWLERS:
                nursery.start_soon(one, name)

    trio.run(both)
    return done


def expected() -> tuple[set[tuple[int, str]], dict[tuple[int, str], str], int]:
    """What a crawl of SITE must find: the pages that load, those that fail and why, and the
    words of those that load; found by walking the site's own description."""
    ok: set[tuple[int, str]] = set()
    failed: dict[tuple[int, str], str] = {}
    words = 0
    todo, seen = [(0, "/")], {(0, "/")}
    while todo:
        page = SITE.pages[todo.pop()]
        if page.kind in _site.LOADS:
            ok.add((page.host, page.path))
            words += page.words
            for link in page.links:
                if link not in seen:
                    seen.add(link)
                    todo.append(link)
        else:
            failed[page.host, page.path] = "HTTP 404" if page.kind is Kind.MISSING else "timeout"
    return ok, failed, words


def link_depth() -> int:
    """How many links deep the pages that load go, from the root."""
    depth = {(0, "/"): 0}
    todo = [(0, "/")]
    for where in todo:  # (a breadth-first walk: todo grows as it goes)
        page = SITE.pages[where]
        if page.kind in _site.LOADS:
            for link in page.links:
                if link not in depth:
                    depth[link] = depth[where] + 1
                    todo.append(link)
    return max(depth.values())


def pages_of(kind: Kind, run: Run) -> list[_site.PageSpec]:
    return [p for p in SITE.pages.values() if p.kind is kind and (p.host, p.path) in run.failed]


# -- both crawlers get the same, right results -----------------------------------------------


@pytest.mark.parametrize("name", CRAWLERS)
def test_the_crawl_finds_what_the_site_holds(runs: dict[str, Run], name: str) -> None:
    """Every reachable page is crawled once; those that load are ok, 404s and hangs fail."""
    ok, failed, words = expected()
    run = runs[name]
    assert run.ok == ok
    assert run.failed == failed
    assert run.report.words == words
    # The site has every kind, so this run exercised each of them.
    kinds = Counter(SITE.pages[where].kind for where in ok | set(failed))
    assert set(kinds) == set(Kind), kinds


def test_both_crawlers_report_the_same_pages(runs: dict[str, Run]) -> None:
    """Same pages ok, same pages failed for the same reasons, same words."""
    a, b = runs["trioflow"], runs["trio"]
    assert (a.ok, a.failed, a.report.words) == (b.ok, b.failed, b.report.words)


@pytest.mark.parametrize("name", CRAWLERS)
def test_404_pages_fail_without_a_retry(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    missing = [p for p in SITE.pages.values() if p.kind is Kind.MISSING]
    assert missing
    for page in missing:
        assert [r.status for r in run.requests(page)] == [404], page.path


@pytest.mark.parametrize("name", CRAWLERS)
def test_503_pages_are_retried_until_they_load(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    flaky = [p for p in SITE.pages.values() if p.kind is Kind.FLAKY and run.requests(p)]
    assert flaky
    for page in flaky:
        assert [r.status for r in run.requests(page)] == [503] * page.failures + [200]
        assert (page.host, page.path) in run.ok


@pytest.mark.parametrize("name", CRAWLERS)
def test_hung_pages_time_out_on_every_attempt(runs: dict[str, Run], name: str) -> None:
    """A page that never answers is tried 1 + RETRIES times, each attempt cut off by the
    client (the server sees it leave) after about ATTEMPT_TIMEOUT; one that hangs only once
    loads on its second attempt."""
    run = runs[name]
    hung = pages_of(Kind.HANG, run)
    assert hung
    for page in hung:
        requests = run.requests(page)
        assert [r.status for r in requests] == [None] * (1 + RETRIES)
        for r in requests:
            assert ATTEMPT_TIMEOUT / 2 < r.ended - r.arrived < ATTEMPT_TIMEOUT + 5
    slow = [p for p in SITE.pages.values() if p.kind is Kind.SLOW_ONCE and run.requests(p)]
    assert slow
    for page in slow:
        assert [r.status for r in run.requests(page)] == [None, 200]


# -- the limits, seen from the server ------------------------------------------------------


@pytest.mark.parametrize("name", CRAWLERS)
def test_never_more_requests_per_host_than_the_pool_allows(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    assert set(run.server.most_in_flight) == set(range(SITE.hosts))
    assert max(run.server.most_in_flight.values()) <= PER_HOST
    # The limit was reached (hung attempts hold their places): the check above had teeth.
    assert PER_HOST in run.server.most_in_flight.values()
    # A second opinion, from the log: at no request's arrival were more in flight.
    for r in run.server.log:
        overlapping = [
            o for o in run.server.log if o.host == r.host and o.arrived <= r.arrived < o.ended
        ]
        assert len(overlapping) <= PER_HOST


@pytest.mark.parametrize("name", CRAWLERS)
def test_requests_per_host_keep_to_the_rate(runs: dict[str, Run], name: str) -> None:
    """Requests reach each host at most PER_SECOND a second: any k+1 consecutive arrivals
    span at least k intervals, less one interval for the jitter of getting there."""
    interval = 1 / PER_SECOND
    for host in range(SITE.hosts):
        arrivals = sorted(r.arrived for r in runs[name].server.log if r.host == host)
        assert len(arrivals) > 10
        for i, first in enumerate(arrivals):
            for k, later in enumerate(arrivals[i + 1 :], start=1):
                assert later - first >= k * interval - interval, (host, i, k)


# -- the trioflow version's sub-tasks --------------------------------------------------------


async def test_sub_tasks_awaited_inside_tasks_need_no_spare_workers() -> None:
    """With 2 workers and pages 4 links deep, each visit waiting for its sub-tasks: the
    waits give the slots back, so it neither deadlocks nor runs more than 2 at once."""
    run = await crawl_site(crawler_trioflow.crawl, max_workers=2)
    ok, failed, _words = expected()
    assert (run.ok, run.failed) == (ok, failed)
    assert max(run.server.most_in_flight.values()) <= 2
    assert link_depth() >= 4


@pytest.mark.parametrize("name", CRAWLERS)
async def test_cancelling_a_crawl_ends_it_promptly(name: str) -> None:
    async with _site.open_site(SITE, seed=SEED) as server:
        started = trio.current_time()
        with trio.move_on_after(0.3) as scope:
            await CRAWLERS[name](server.base_url)
        assert scope.cancelled_caught
        assert trio.current_time() - started < 0.3 + 5
        assert server.log  # it was cut short mid-crawl, not before it began


# -- as programs ------------------------------------------------------------------------------


async def test_both_examples_run_as_scripts_and_print_the_same_report() -> None:
    outputs: dict[str, str] = {}

    async def run(name: str) -> None:
        with trio.fail_after(STUCK):
            done = await trio.run_process(
                [sys.executable, str(EXAMPLES / f"crawler_{name}.py")],
                capture_stdout=True,
                capture_stderr=True,
            )
        outputs[name] = done.stdout.decode()

    async with trio.open_nursery() as nursery:
        for name in CRAWLERS:
            nursery.start_soon(run, name)

    def report(output: str) -> list[str]:
        """The report's lines; URLs without their ports, and the time left out."""
        lines = output.splitlines()
        start = max(i for i, line in enumerate(lines) if line.startswith("pages ok: "))
        return sorted(re.sub(r"http://127\.0\.0\.1:\d+|, time: .*", "", s) for s in lines[start:])

    assert report(outputs["trioflow"]) == report(outputs["trio"])
    assert any(re.fullmatch(r"pages ok: \d+, failed: [1-9]\d*", s) for s in report(outputs["trio"]))


# -- the docs page ---------------------------------------------------------------------------


def test_the_docs_page_shows_the_current_counts_and_code() -> None:
    """docs/examples.md shows the tables docs/examples/_count.py makes and both examples'
    code as they are: it cannot drift (``_count.py --write`` refreshes it)."""
    page = _count.PAGE.read_text(encoding="utf-8")
    assert _count.refresh(page) == page
    assert _count.table() in page


def test_the_line_counts_skip_blanks_comments_and_docstrings(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Module\ndocstring."""\n\n# a comment\nx = 1  # code\n\n\ndef f() -> None:\n'
        '    """One line."""\n    return None\n',
        encoding="utf-8",
    )
    assert _count.count(sample) == _count.Counts(lines=6, code=3)
