"""Sampling profiles of the services while a benchmark runs (py-spy, attached by pid).

``PARLEY_BENCH_PROFILE=<dir>`` makes the pipeline benchmark record each service into
``<dir>/<service>.txt`` (py-spy's collapsed stacks); ``python -m bench.profile <file>`` prints
the functions that hold the most samples, by own time and including callees.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path


@contextlib.asynccontextmanager
async def recording(pids: dict[str, int]) -> AsyncIterator[None]:
    """Record every pid while the block runs (no-op unless PARLEY_BENCH_PROFILE is set)."""
    target = os.environ.get("PARLEY_BENCH_PROFILE")
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not target or not Path(exe).exists():
        yield
        return
    Path(target).mkdir(parents=True, exist_ok=True)
    processes = []
    for name, pid in pids.items():
        out = Path(target) / f"{name}.txt"
        processes.append(
            await asyncio.create_subprocess_exec(
                exe,
                "record",
                "--pid",
                str(pid),
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                str(out),
                "--nonblocking",
                "--gil",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )
    try:
        yield
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(2)  # SIGINT: py-spy writes its output and exits
        for process in processes:
            await process.wait()


def summarise(path: Path, top: int = 40, prefix: str = "") -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{path.name}: {total} samples"]
    for title, counter in (("own", own), ("inclusive", inclusive)):
        lines.append(f"--- {title}")
        shown = 0
        for frame, count in counter.most_common():
            if prefix and prefix not in frame:
                continue
            lines.append(f"{100 * count / max(total, 1):5.1f}%  {frame}")
            shown += 1
            if shown >= top:
                break
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--only", default="", help="only frames containing this text")
    args = parser.parse_args()
    for file in args.files:
        print(summarise(file, args.top, args.only))


if __name__ == "__main__":
    main()
