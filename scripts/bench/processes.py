"""What a measured command costs the machine, read from /proc: the peak resident memory and the
CPU seconds of the command's process tree (and how many of them the kernel spent for it), and
the CPU seconds the local stack's servers (MinIO, PostgreSQL) spent meanwhile.

The tree is sampled every 0.2 s (a process that starts and ends between two samples is missed;
the job's Python driver and its JVM live for the whole run). A server's CPU is the difference
of two readings: PostgreSQL's is the postmaster's own plus that of its backends (live ones
read directly, ended ones as the postmaster's reaped children), so backends that came and went
during the command are counted.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Timed:
    seconds: float
    peak_rss_mb: float
    stdout: str
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # job, job_system, minio, postgres


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (which may hold spaces): field 3 onwards."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, reaped_children: bool = False) -> float | None:
    """User + system CPU seconds of ``pid`` (plus its waited-for children's, if asked)."""
    times = cpu_times(pid, reaped_children)
    return None if times is None else sum(times)


def cpu_times(pid: int, reaped_children: bool = False) -> tuple[float, float] | None:
    """User and system CPU seconds of ``pid`` (plus its waited-for children's, if asked)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # utime, stime, cutime, cstime are fields 14-17 of stat, 12-15 of what follows the name
    user, system = int(fields[11]), int(fields[12])
    if reaped_children:
        user, system = user + int(fields[13]), system + int(fields[14])
    return user / _TICKS, system / _TICKS


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.extend(int(c) for c in (task / "children").read_text().split())
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return found


def tree(pid: int) -> list[int]:
    pids, pending = [], [pid]
    while pending:
        current = pending.pop()
        pids.append(current)
        pending.extend(children(current))
    return pids


def rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
    )


def server_pids(stack_dir: Path) -> dict[str, int]:
    """The local stack's MinIO and PostgreSQL postmaster, if they run from ``stack_dir``."""
    found = {}
    for name, pid_file in (
        ("minio", stack_dir / "minio" / "minio.pid"),
        ("postgres", stack_dir / "postgres" / "data" / "postmaster.pid"),
    ):
        try:
            pid = int(pid_file.read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            continue
        if cpu_seconds(pid) is not None:
            found[name] = pid
    return found


def server_cpu(pids: Mapping[str, int]) -> dict[str, float]:
    readings = {}
    for name, pid in pids.items():
        total = cpu_seconds(pid, reaped_children=True)
        if total is None:
            continue
        for child in children(pid):
            total += cpu_seconds(child) or 0.0
        readings[name] = total
    return readings


def run_measured(
    command: Sequence[str], env: Mapping[str, str], log_path: Path, servers: Mapping[str, int]
) -> tuple[int, Timed]:
    """Run ``command`` (stderr to ``log_path``); its exit code and what it cost."""
    peak = 0
    cpu_by_pid: dict[int, float] = {}
    system_by_pid: dict[int, float] = {}
    servers_before = server_cpu(servers)
    with log_path.open("w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(command), env=dict(env), stdout=subprocess.PIPE, stderr=log, text=True
        )
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.2):
                pids = tree(process.pid)
                peak = max(peak, sum(rss_kb(p) for p in pids))
                for p in pids:
                    used = cpu_times(p)
                    if used is not None:
                        cpu_by_pid[p] = max(sum(used), cpu_by_pid.get(p, 0.0))
                        system_by_pid[p] = max(used[1], system_by_pid.get(p, 0.0))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout, _ = process.communicate()
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    servers_after = server_cpu(servers)
    cpu = {
        "job": round(sum(cpu_by_pid.values()), 1),
        # of which in the kernel: page faults among it, which on a VM whose host takes freed
        # memory back cost several times what they do on bare metal (docs/performance.md)
        "job_system": round(sum(system_by_pid.values()), 1),
    }
    for name, after in servers_after.items():
        if name in servers_before:
            cpu[name] = round(after - servers_before[name], 1)
    return process.returncode, Timed(seconds, peak / 1024, stdout, cpu)
