"""The bench's measure of a command's CPU: user and kernel time of its process tree."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from scripts.bench.processes import run_measured
from scripts.bench.report import format_cpu

# One byte written to every page of fresh mappings: the time goes to the kernel's page faults,
# next to a loop of Python arithmetic, which stays in user space.
IN_THE_KERNEL = (
    "import mmap\n"
    "for _ in range(60):\n"
    "    m = mmap.mmap(-1, 32 << 20)\n"
    "    m[::4096] = b'x' * 8192\n"
    "    m.close()\n"
)
IN_USER_SPACE = "total = 0\nfor i in range(15_000_000):\n    total += i\n"


def measured(code: str, tmp_path: Path) -> dict[str, float]:
    returncode, timed = run_measured(
        [sys.executable, "-c", code], os.environ, tmp_path / "log.txt", servers={}
    )
    assert returncode == 0, (tmp_path / "log.txt").read_text()
    return timed.cpu_seconds


def test_a_commands_cpu_says_how_much_of_it_the_kernel_spent(tmp_path: Path) -> None:
    kernel = measured(IN_THE_KERNEL, tmp_path)
    user = measured(IN_USER_SPACE, tmp_path)
    assert kernel["job"] >= 0.2 and user["job"] >= 0.2, (kernel, user)
    assert kernel["job_system"] >= 0.5 * kernel["job"], kernel
    assert user["job_system"] <= 0.2 * user["job"], user


def test_the_table_shows_the_kernels_share_after_the_runs_cpu() -> None:
    assert format_cpu({"job": 165.4, "job_system": 24.6, "minio": 3.0, "postgres": 0.6}) == (
        "165 (25)/3/1"
    )
    assert format_cpu({"job": 12.0, "minio": 1.0}) == "12/1/-"  # results of earlier benches
