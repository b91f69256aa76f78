"""Turn a RunView into something to look at: a rich layout, or one plain line.

Both show how long each running task has been at it, longest first, and mark those running
longer than the view's ``slow_after``: a task that hangs produces no events, so its growing
running time is the only sign of it a watcher gets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._view import Running, RunView, shown

if TYPE_CHECKING:
    from rich.console import RenderableType

_STATUS_ORDER = (
    "queued",
    "pending",
    "waiting",
    "running",
    "completed",
    "failed",
    "timeout",
    "cancelled",
)

_RUNNING_IN_A_LINE = 3  # running tasks named in a plain line; the rest are counted
_RUNNING_IN_A_TABLE = 10


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def progress_text(view: RunView, now: float) -> str:
    share = view.finished / view.total * 100 if view.total else 0.0
    return (
        f"{view.finished}/{view.total} finished ({share:.0f}%)  "
        f"{view.rate(now):.1f}/s  ETA {duration(view.eta(now))}  "
        f"elapsed {duration(view.elapsed(now))}"
    )


def counts_text(view: RunView) -> str:
    return "  ".join(
        f"{status} {view.counts[status]}" for status in _STATUS_ORDER if view.counts[status]
    )


def stamp(view: RunView, at: float) -> str:
    """The timestamp that starts every plain line: time since the view started."""
    return f"[+{view.elapsed(at):8.2f}s]"


def running_label(view: RunView, running: Running) -> str:
    """``task``, or ``task@agent`` for an agent's assignment."""
    text = view.label(running.source, running.task_id)
    return text if running.agent_id is None else f"{text}@{shown(running.agent_id)}"


def running_text(view: RunView, running: Running, now: float) -> str:
    """``task 12.5s`` (``task@agent 12.5s``), and ``(slow)`` past ``slow_after``."""
    text = f"{running_label(view, running)} {duration(now - running.since)}"
    return text + " (slow)" if view.is_slow(running, now) else text


def plain_line(view: RunView, now: float) -> str:
    """One progress line, for logs and pipes (without its timestamp)."""
    line = f"{progress_text(view, now)} | {counts_text(view) or 'no tasks yet'}"
    if view.running:
        longest = view.longest_running()
        shown = ", ".join(running_text(view, r, now) for r in longest[:_RUNNING_IN_A_LINE])
        more = len(longest) - _RUNNING_IN_A_LINE
        line += f" | running {shown}" + (f" (+{more} more)" if more > 0 else "")
    if view.agents:
        online = sum(row.status != "offline" for row in view.agents.values())
        line += f" | agents {online}/{len(view.agents)} online, reassigned {view.reassigned}"
    return line


def rich_view(view: RunView, now: float, title: str = "trioflow") -> RenderableType:
    """A rich renderable: progress, counts, running tasks, agents, recent failures.

    Ids and error messages are the user's text, not rich markup: each goes in a ``Text``,
    so that ``"[/]"`` in an error is shown as written instead of raising ``MarkupError``
    (which would stop the run) and ``"[red]"`` in an id is not swallowed as a style."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    progress = Table.grid(padding=(0, 2))
    progress.add_row(
        ProgressBar(total=max(view.total, 1), completed=view.finished, width=40),
        Text(progress_text(view, now)),
    )
    parts: list[RenderableType] = [
        Text(title, style="bold"),
        progress,
        Text(counts_text(view) or "no tasks yet", style="cyan"),
    ]
    if view.running:
        running = Table(title="running", title_justify="left", expand=False)
        running.add_column("task")
        running.add_column("attempt", justify="right")
        running.add_column("running for", justify="right")
        with_agents = any(r.agent_id is not None for r in view.running.values())
        if with_agents:
            running.add_column("agent")
        longest = view.longest_running()
        for task in longest[:_RUNNING_IN_A_TABLE]:
            slow = view.is_slow(task, now)
            cells: list[RenderableType] = [
                Text(view.label(task.source, task.task_id)),
                str(task.attempt),
                Text(
                    duration(now - task.since) + (" slow" if slow else ""),
                    style="bold red" if slow else "",
                ),
            ]
            if with_agents:
                cells.append(Text("" if task.agent_id is None else shown(task.agent_id)))
            running.add_row(*cells)
        captions = []
        if len(longest) > _RUNNING_IN_A_TABLE:
            captions.append(f"and {len(longest) - _RUNNING_IN_A_TABLE} more")
        slow_count = len(view.slow(now))
        if slow_count:
            captions.append(f"{slow_count} running longer than {duration(view.slow_after)}")
        running.caption = "; ".join(captions) or None
        parts.append(running)
    if view.agents:
        agents = Table(title="agents", title_justify="left")
        for column in (
            "agent",
            "status",
            "in flight",
            "completed",
            "failed",
            "reassigned",
            "restarts",
            "last heartbeat",
        ):
            agents.add_column(column, justify="left" if column in ("agent", "status") else "right")
        for (source, agent_id), row in view.agents.items():
            style = {"offline": "red", "busy": "yellow"}.get(row.status, "green")
            beat = row.last_heartbeat
            agents.add_row(
                Text(view.label(source, agent_id)),
                Text(row.status, style=style),
                str(row.in_flight),
                str(row.completed),
                str(row.failed),
                str(row.reassigned),
                str(row.restarts),
                "–" if beat is None else f"{duration(now - beat)} ago",
            )
        parts.append(agents)
    if view.failures:
        failures = Table(title="recent failures", title_justify="left")
        for column in ("at", "what", "status", "error"):
            failures.add_column(column)
        for failure in view.failures:
            failures.add_row(
                f"+{failure.at - view.started:.2f}s",
                Text(view.label(failure.source, failure.what)),
                failure.status,
                Text(failure.error),
            )
        parts.append(failures)
    return Group(*parts)
