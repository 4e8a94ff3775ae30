"""The fixed cost of a sandbox worker, side by side: started from nothing, forked by the template, a bare interpreter.

Every new session, and every load that outgrows its worker, pays for one worker
start before anything else happens. The three are measured interleaved (one of
each per round) so that the machine's load falls on all of them alike:

* ``cold``: a worker started from nothing (``RLM_WORKER_TEMPLATE=false``): a
  fresh ``python -I -B``, its imports, its confinement, until it says ready;
* ``forked``: a worker forked by a running template, confined, ready;
* ``python``: a bare ``python -I -c pass``, the floor of any fresh process.

Also measured: the CPU time a start costs the machine (user + system of the
worker itself, from ``/proc`` as it exits), which is what a crowd of starts on a
few cores queues for.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.stats import spread
from sandbox import Sandbox, SandboxLimits
from sandbox.template import WorkerTemplate


def _cpu_s(pid: int) -> float:
    """CPU time the process has used, in seconds (the scheduler's nanoseconds: clock ticks are too coarse)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _one(template: WorkerTemplate | None, workdirs: Path) -> tuple[float, float]:
    box = Sandbox(SandboxLimits(), workdir_parent=workdirs, template=template)
    started = time.perf_counter()
    await box.start()
    wall = time.perf_counter() - started
    cpu = _cpu_s(box.pid or 0)
    await box.close()
    return wall, cpu


async def worker_start(rounds: int = 10) -> dict[str, Any]:
    """``rounds`` rounds of (cold start, forked start, bare interpreter), interleaved; seconds."""
    walls: dict[str, list[float]] = {"cold": [], "forked": [], "python": []}
    cpus: dict[str, list[float]] = {"cold": [], "forked": []}
    with tempfile.TemporaryDirectory(prefix="rlm-bench-starts-") as tmp:
        workdirs = Path(tmp)
        async with WorkerTemplate() as template:
            started = time.perf_counter()
            await template.warm()
            template_s = time.perf_counter() - started
            for _ in range(rounds + 1):  # the first round warms the page cache and is dropped
                for kind, chosen in (("cold", None), ("forked", template)):
                    wall, cpu = await _one(chosen, workdirs)
                    walls[kind].append(wall)
                    cpus[kind].append(cpu)
                began = time.perf_counter()
                subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)
                walls["python"].append(time.perf_counter() - began)
    out: dict[str, Any] = {"rounds": rounds, "template_start_s": round(template_s, 3)}
    for kind, values in walls.items():
        out[f"{kind}_ms"] = spread([v * 1000 for v in values[1:]])
    for kind, values in cpus.items():
        out[f"{kind}_cpu_ms"] = round(statistics.median(values[1:]) * 1000, 1)
    ratios = [c / f for c, f in zip(walls["cold"][1:], walls["forked"][1:], strict=True)]
    out["cold_over_forked"] = spread(ratios)
    return out
