"""Benchmark: how long ``yieldstream sql`` takes to answer a trivial query.

Builds a store once with ``yieldstream demo --data-dir`` (the recorded responses,
offline), then times, each in a fresh process, ``repeat`` runs of:

* ``python -c "import duckdb"``: the floor no command that queries DuckDB can beat;
* ``+ LOAD ducklake``: that, and loading the DuckLake extension from the
  duckdb-ext-ducklake wheel as the store does (DuckDB checks its signature: it hashes
  the whole 50 MB binary);
* ``+ LOAD sqlite``: that, and the SQLite catalog's extension (another 50 MB hashed);
* ``+ ATTACH, query``: that, and attaching the store read-only and running the query:
  the DuckDB part of the command alone, the floor of ``yieldstream sql``;
* ``python -c "import yieldstream.cli"``: the command line's imports alone;
* ``yieldstream -d STORE sql "SELECT count(*) FROM observations"``: imports, settings,
  attaching the store read-only, the query and its printed result.

Run (from the repository root)::

    python -m bench.cli_start --repeat 15

Prints one JSON line per command: median, minimum and maximum wall seconds, and the
median CPU seconds (user + system), which a busy machine disturbs least. A last line
parts the command's median (wall and CPU) into what each step adds to the one before:
DuckDB's import, each extension's LOAD, the attach and query, and the rest
(the command line: its imports, settings, query check and printing).
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
# What sinks.lake does to open a reader, one step more at each level (argv[1]; the
# store is argv[2]); the extensions come from the duckdb-ext-* wheels, signed.
_DUCKDB = """
import importlib.util, sys
import duckdb
level, store = int(sys.argv[1]), sys.argv[2]
wheels = importlib.util.find_spec("duckdb_ext").submodule_search_locations[0]
con = duckdb.connect(config={"autoinstall_known_extensions": "false",
                             "extension_directory": wheels + "/extensions"})
for extension in ["ducklake", "sqlite"][:level]:
    con.execute(f"LOAD {extension}")
if level > 2:
    con.execute(f"ATTACH 'ducklake:sqlite:{store}/catalog.sqlite' AS lake (READ_ONLY)")
    con.execute("USE lake")
    con.execute(sys.argv[3]).fetchall()
"""


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
    parser.add_argument(
        "--data-dir",
        help="an existing store, its SQLite catalog in it (default: a demo store, built now)",
    )
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
        duckdb_to = [sys.executable, "-c", _DUCKDB]
        commands = {
            "import duckdb": [sys.executable, "-c", "import duckdb"],
            "+ LOAD ducklake": [*duckdb_to, "1", store],
            "+ LOAD sqlite": [*duckdb_to, "2", store],
            "+ ATTACH, query": [*duckdb_to, "3", store, QUERY],
            "import yieldstream.cli": [sys.executable, "-c", "import yieldstream.cli"],
            "yieldstream sql": [cli, "-d", store, "sql", QUERY],
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for command in commands.values():
            timed(command)  # warm the page cache and the bytecode
        for _ in range(args.repeat):  # interleaved: a busy moment hits every command
            for name, command in commands.items():
                times[name].append(timed(command))
    medians: dict[str, tuple[float, float]] = {}
    for name, runs in times.items():
        wall = [w for w, _ in runs]
        cpu = [c for _, c in runs]
        medians[name] = statistics.median(wall), statistics.median(cpu)
        print(
            json.dumps(
                {
                    "command": name,
                    "runs": len(runs),
                    "median_s": round(medians[name][0], 3),
                    "min_s": round(min(wall), 3),
                    "max_s": round(max(wall), 3),
                    "median_cpu_s": round(medians[name][1], 3),
                }
            )
        )
    print(json.dumps({"parts_of_yieldstream_sql": _parts(medians)}))


# Each step of `yieldstream sql`, and the command whose median it adds to.
_STEPS = {
    "import duckdb": None,
    "+ LOAD ducklake": "import duckdb",
    "+ LOAD sqlite": "+ LOAD ducklake",
    "+ ATTACH, query": "+ LOAD sqlite",
    "the rest (command line)": "+ ATTACH, query",
}


def _parts(medians: dict[str, tuple[float, float]]) -> dict[str, dict[str, float]]:
    """What each step adds, in median wall and CPU seconds (the last: the command's rest)."""
    parts: dict[str, dict[str, float]] = {}
    for step, before in _STEPS.items():
        wall, cpu = medians.get(step, medians["yieldstream sql"])
        if before is not None:
            wall, cpu = wall - medians[before][0], cpu - medians[before][1]
        parts[step] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
    return parts


if __name__ == "__main__":
    main()
