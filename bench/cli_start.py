"""Benchmark: how long ``yieldstream sql`` takes to answer a trivial query.

Builds a store once with ``yieldstream demo --data-dir`` (the recorded responses,
offline), then times, each in a fresh process, ``repeat`` runs of:

* ``python -c "import duckdb"``: the floor no command that queries DuckDB can beat;
* ``python -c "import yieldstream.cli"``: the command line's imports alone;
* ``yieldstream -d STORE sql "SELECT count(*) FROM observations"``: imports, settings,
  attaching the store read-only, the query and its printed result.

Run (from the repository root)::

    python -m bench.cli_start --repeat 15

Prints one JSON line per command: median, minimum and maximum wall seconds, and the
median CPU seconds (user + system), which a busy machine disturbs least.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUERY = "SELECT count(*) FROM observations"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``command``.

    CPU time is what a busy machine disturbs least: the wall time of a shared
    machine includes waiting for a core.
    """
    cpu, start = _cpu(), time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, _cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--data-dir", help="an existing store (default: a demo store, built now)")
    args = parser.parse_args()
    cli = str(Path(sys.executable).with_name("yieldstream"))
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        store = args.data_dir or str(Path(tmp) / "data")
        if not args.data_dir:
            subprocess.run(
                [cli, "--log-level", "warning", "demo", "--data-dir", store],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        commands = {
            "import duckdb": [sys.executable, "-c", "import duckdb"],
            "import yieldstream.cli": [sys.executable, "-c", "import yieldstream.cli"],
            "yieldstream sql": [cli, "-d", store, "sql", QUERY],
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for command in commands.values():
            timed(command)  # warm the page cache and the bytecode
        for _ in range(args.repeat):  # interleaved: a busy moment hits every command
            for name, command in commands.items():
                times[name].append(timed(command))
    for name, runs in times.items():
        wall = [w for w, _ in runs]
        cpu = [c for _, c in runs]
        print(
            json.dumps(
                {
                    "command": name,
                    "runs": len(runs),
                    "median_s": round(statistics.median(wall), 3),
                    "min_s": round(min(wall), 3),
                    "max_s": round(max(wall), 3),
                    "median_cpu_s": round(statistics.median(cpu), 3),
                }
            )
        )


if __name__ == "__main__":
    main()
