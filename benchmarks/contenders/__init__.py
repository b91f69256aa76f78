"""Every contender runs the same workloads (see ``benchmarks/workloads.py``).

A contender is a module with ``NAME`` and these functions, each returning seconds of wall
time for the run (or, for memory, bytes per queued task):

* ``independent(n, workers)``: n no-op tasks, no dependencies;
* ``chain(n)``: n no-op tasks, each consuming the previous one's result;
* ``dag(layers, durations, workers)``: a layered DAG of sleeping tasks (``layers`` is a list
  of lists of dependency indices, ``durations`` seconds per task);
* ``failure_mix(specs, workers)``: tasks that fail or time out and are retried;
* ``queued_memory(n)``: bytes per task held in the queue before it runs.
"""
