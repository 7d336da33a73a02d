"""A benchmark's measurement in a fresh process, with the peak RSS of its process tree."""

from __future__ import annotations

import contextlib
import subprocess
import time

import psutil


def run_sampled(command: list[str]) -> tuple[str, int, int]:
    """Run ``command``: its stdout, exit code and peak RSS in bytes.

    The peak is the largest sum of the RSS of the process and all its descendants
    (transform worker, catalog holder) seen at one instant, every 20 ms. A child's
    own high-water mark would not do: after fork and exec it counts what it
    inherited from the benchmark's process.
    """
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    root = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        total = 0
        with contextlib.suppress(psutil.Error):
            for process in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
        peak = max(peak, total)
        time.sleep(0.02)
    out, _ = child.communicate()
    return out, child.returncode, peak
