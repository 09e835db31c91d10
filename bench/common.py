"""What every benchmark shares: the machine, process resources, percentiles, the bench's own vhost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# The test helpers name databases and vhosts after PARLEY_TEST_RUN_ID; the bench gets its own names.
os.environ.setdefault("PARLEY_TEST_RUN_ID", f"bench{os.getpid()}")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine() -> dict[str, object]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_total = 0
    with contextlib.suppress(OSError):
        match = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        mem_total = int(match.group(1)) * 1024 if match else 0
    versions: dict[str, str] = {}
    for name, cmd in {
        "postgresql": ["psql", "--version"],
        "rabbitmq": ["rabbitmqctl", "-q", "version"],
    }.items():
        with contextlib.suppress(Exception):
            versions[name] = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        **versions,
    }


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


# ---------------------------------------------------------------------------- process resources
def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_seconds(pid: int, *, system_only: bool = False) -> float:
    """User + system (or only system) CPU time of a process (0 when it is gone)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[12]) if system_only else int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), MiB."""
    match = re.search(r"VmHWM:\s+(\d+) kB", _read(f"/proc/{pid}/status"))
    return round(int(match.group(1)) / 1024, 1) if match else 0.0


def rss_mib(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", _read(f"/proc/{pid}/status"))
    return round(int(match.group(1)) / 1024, 1) if match else 0.0


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used (every core), from ``/proc/stat``."""
    fields = [int(x) for x in _read("/proc/stat").splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


def pids_named(prefix: str) -> list[int]:
    """Processes whose command name starts with ``prefix`` (postgres backends, beam.smp)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _read(f"/proc/{entry.name}/comm").startswith(prefix):
            out.append(int(entry.name))
    return out


@dataclass
class CpuMeter:
    """CPU seconds spent by named groups of processes between ``start()`` and ``stop()``.

    RabbitMQ is one process for the whole machine: anything else using it at the same time counts
    too. ``machine (all processes)`` is every core's busy time: what is left after the named
    groups is PostgreSQL and whatever else ran on the machine meanwhile.
    """

    groups: dict[str, list[int]] = field(default_factory=dict)
    _start: dict[str, float] = field(default_factory=dict)
    _start_system: dict[str, float] = field(default_factory=dict)
    result: dict[str, float] = field(default_factory=dict)
    system: dict[str, float] = field(default_factory=dict)  # the part spent in the kernel
    wall_s: float = 0.0
    _t0: float = 0.0

    def _groups(self) -> dict[str, list[int]]:
        return {
            **self.groups,
            "rabbitmq": pids_named("beam.smp"),
            "bench driver": [os.getpid()],
        }

    def _sample(self, *, system_only: bool = False) -> dict[str, float]:
        sample = {
            name: sum(cpu_seconds(p, system_only=system_only) for p in pids) for name, pids in self._groups().items()
        }
        if not system_only:
            sample["machine (all processes)"] = machine_busy_seconds()
        return sample

    def start(self) -> None:
        self._start = self._sample()
        self._start_system = self._sample(system_only=True)
        self._t0 = time.perf_counter()

    def stop(self) -> dict[str, float]:
        self.wall_s = time.perf_counter() - self._t0
        end, end_system = self._sample(), self._sample(system_only=True)
        self.result = {k: round(end[k] - self._start.get(k, 0.0), 2) for k in end}
        self.system = {k: round(end_system[k] - self._start_system.get(k, 0.0), 2) for k in end_system}
        return self.result


# ---------------------------------------------------------------------------- infrastructure
def ensure_services() -> None:
    subprocess.run(["bash", str(ROOT / "deploy/scripts/ensure-services.sh")], check=True)


@contextlib.asynccontextmanager
async def bench_vhost(label: str) -> AsyncIterator[str]:
    """A RabbitMQ vhost of its own (created, deleted afterwards), as an AMQP URL."""
    from tests.support import infra

    vhost = f"parley_test_{os.environ['PARLEY_TEST_RUN_ID']}_{label}"
    await asyncio.to_thread(infra.ensure_vhost, vhost)
    try:
        yield infra.amqp_url(vhost)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(infra.delete_vhost, vhost)


class BackendCpu:
    """CPU seconds of the PostgreSQL backends serving some databases (their pids, from ``pg_stat_activity``)."""

    def __init__(self, database_urls: list[str]) -> None:
        self.names = [url.rsplit("/", 1)[-1] for url in database_urls]
        self._start: dict[int, float] = {}

    async def _pids(self) -> list[int]:
        import asyncpg

        from tests.support import infra

        conn = await asyncpg.connect(infra.pg_url("postgres").replace("postgresql+asyncpg://", "postgresql://"))
        try:
            rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = ANY($1::text[])", self.names)
            return [int(r["pid"]) for r in rows]
        finally:
            await conn.close()

    async def start(self) -> None:
        self._start = {pid: cpu_seconds(pid) for pid in await self._pids()}

    async def stop(self) -> float:
        """CPU since ``start()`` (backends that ended meanwhile are not counted)."""
        return round(sum(cpu_seconds(pid) - self._start.get(pid, 0.0) for pid in await self._pids()), 2)


async def drop_databases() -> None:
    from tests.support import infra

    await infra.drop_created_databases()
