"""The seed chapter's reference solution (challenge 1), as published, plus one fix.

The one change, so that it runs at all: in ``SmartScheduler.run``, ``asyncio.wait`` returns
a *set* of pending tasks, which the next loop iteration tries to ``.append`` to
(``AttributeError: 'set' object has no attribute 'append'`` on the chapter's own test). The
fixed line is marked ``# FIX``. Everything else is the chapter's code, defects included:
the 100 ms polling sleep, the linear retry delay, timeouts that are never retried, results
passed as a ``dependencies=`` keyword, and a run that never ends when a dependency fails.
The workload adapters below only call it.
"""
# ruff: noqa

import asyncio
from typing import List, Dict, Any, Optional, Callable, Set
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
import heapq


class TaskStatus(Enum):
    PENDING = "pending"
    WAITING = "waiting"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


@dataclass
class Task:
    id: str
    func: Callable
    args: tuple = field(default_factory=tuple)
    kwargs: dict = field(default_factory=dict)
    priority: int = 1
    dependencies: Set[str] = field(default_factory=set)
    timeout: float = 30.0
    max_retries: int = 3
    retry_delay: float = 1.0

    status: TaskStatus = TaskStatus.PENDING
    result: Any = None
    error: Optional[Exception] = None
    retries: int = 0
    created_at: datetime = field(default_factory=datetime.now)
    started_at: Optional[datetime] = None
    completed_at: Optional[datetime] = None

    def __lt__(self, other):
        return self.priority < other.priority


class SmartScheduler:
    def __init__(self, max_workers: int = 5):
        self.max_workers = max_workers
        self.semaphore = asyncio.Semaphore(max_workers)
        self.tasks: Dict[str, Task] = {}
        self.pending_queue: List[Task] = []
        self.completed_dependencies: Dict[str, Any] = {}
        self.running_tasks: Set[str] = set()

    async def add_task(self, task: Task) -> str:
        self.tasks[task.id] = task
        heapq.heappush(self.pending_queue, task)
        return task.id

    def _can_run(self, task: Task) -> bool:
        """检查任务是否可以运行"""
        return all(dep in self.completed_dependencies for dep in task.dependencies)

    async def _execute_with_timeout(self, task: Task) -> Any:
        """执行任务（带超时）"""
        # 注入依赖结果
        if task.dependencies:
            dep_results = {dep: self.completed_dependencies[dep] for dep in task.dependencies}
            task.kwargs["dependencies"] = dep_results

        return await asyncio.wait_for(task.func(*task.args, **task.kwargs), timeout=task.timeout)

    async def process_task(self, task: Task) -> Task:
        async with self.semaphore:
            task.status = TaskStatus.RUNNING
            task.started_at = datetime.now()
            self.running_tasks.add(task.id)

            while task.retries <= task.max_retries:
                try:
                    task.result = await self._execute_with_timeout(task)
                    task.status = TaskStatus.COMPLETED
                    task.completed_at = datetime.now()
                    self.completed_dependencies[task.id] = task.result
                    break

                except asyncio.TimeoutError:
                    task.status = TaskStatus.TIMEOUT
                    task.error = Exception("任务超时")
                    break

                except Exception as e:
                    task.error = e
                    task.retries += 1

                    if task.retries <= task.max_retries:
                        await asyncio.sleep(task.retry_delay * task.retries)
                    else:
                        task.status = TaskStatus.FAILED
                        break

            self.running_tasks.remove(task.id)
            return task

    async def run(self) -> Dict[str, Task]:
        workers = []

        while self.pending_queue or workers:
            # 启动可运行的任务
            ready_tasks = []
            remaining = []

            while self.pending_queue:
                task = heapq.heappop(self.pending_queue)
                if self._can_run(task):
                    ready_tasks.append(task)
                else:
                    task.status = TaskStatus.WAITING
                    remaining.append(task)

            # 重新加入队列
            for task in remaining:
                heapq.heappush(self.pending_queue, task)

            # 启动新任务
            for task in ready_tasks:
                workers.append(asyncio.create_task(self.process_task(task)))

            # 等待任务完成
            if workers:
                done, workers = await asyncio.wait(workers, return_when=asyncio.FIRST_COMPLETED)
                workers = list(workers)  # FIX: asyncio.wait returns a set

            await asyncio.sleep(0.1)  # 短暂休眠，避免busy loop

        return self.tasks

    def get_stats(self) -> Dict[str, Any]:
        status_counts = {}
        for status in TaskStatus:
            status_counts[status.value] = sum(1 for t in self.tasks.values() if t.status == status)

        return {
            "total": len(self.tasks),
            "status": status_counts,
            "completed": sum(1 for t in self.tasks.values() if t.status == TaskStatus.COMPLETED),
            "failed": sum(
                1
                for t in self.tasks.values()
                if t.status in [TaskStatus.FAILED, TaskStatus.TIMEOUT]
            ),
        }


# -- workload adapters (not part of the chapter's code) ------------------------------------

import gc as _gc

from benchmarks.workloads import faulty_task
import time as _time
import tracemalloc as _tracemalloc

NAME = "seed reference"


async def _noop(*args, **kwargs):
    return None


def _run(tasks, workers):
    async def main():
        scheduler = SmartScheduler(max_workers=workers)
        for task in tasks:
            await scheduler.add_task(task)
        await scheduler.run()

    start = _time.perf_counter()
    asyncio.run(main())
    return _time.perf_counter() - start


def independent(n, workers):
    return _run([Task(id=str(i), func=_noop) for i in range(n)], workers)


def chain(n):
    tasks = [Task(id="0", func=_noop)]
    tasks += [Task(id=str(i), func=_noop, dependencies={str(i - 1)}) for i in range(1, n)]
    return _run(tasks, 1)


def dag(layers, duration, workers):
    async def sleeper(*args, **kwargs):
        await asyncio.sleep(duration)

    tasks = []
    for depth, layer in enumerate(layers):
        for index, deps in enumerate(layer):
            tasks.append(
                Task(
                    id=f"{depth}-{index}",
                    func=sleeper,
                    dependencies={f"{depth - 1}-{d}" for d in deps},
                )
            )
    return _run(tasks, workers)


def failure_mix(specs, workers, timeout, delay):

    tasks = [
        Task(
            id=str(i),
            func=faulty_task(spec, timeout, asyncio.sleep),
            timeout=timeout,
            max_retries=3,
            retry_delay=delay,
        )
        for i, spec in enumerate(specs)
    ]
    return _run(tasks, workers)


def queued_memory(n):
    result = []

    async def main():
        scheduler = SmartScheduler(max_workers=1)
        _gc.collect()
        _tracemalloc.start()
        before = _tracemalloc.get_traced_memory()[0]
        for i in range(n):
            await scheduler.add_task(Task(id=str(i), func=_noop))
        after = _tracemalloc.get_traced_memory()[0]
        _tracemalloc.stop()
        result.append((after - before) / n)

    asyncio.run(main())
    return result[0]
