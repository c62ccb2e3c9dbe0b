"""Shared benchmark machinery (STYLE §9, perf_notes §5.4): timing, peak extra memory, environment, JSON lines.

Op-agnostic on purpose so every benchmark (distances, IoU, evaluation) reports the same way: ``measure`` runs a
zero-argument callable on a device and returns its median time, its peak memory above what was held before it
and its last result; ``environment`` is the provenance every JSON line carries, so numbers from different
machines or builds are never mixed silently.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

import weightmem_fast as wmf

# A first run longer than this is kept as a timed run: warming up would only double a slow case (perf_notes §5.4).
WARMUP_BELOW_S = 5.0
# Timed runs stop early once they would take longer than this; at least one always runs.
CASE_BUDGET_S = 30.0
# Millisecond calls (GPU kernels, small sizes) repeat until their runs add up to this, up to MAX_RUNS: five
# samples of a 0.5 ms call are too few for a stable median.
MIN_TIMED_S = 0.5
MAX_RUNS = 100

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class Measurement:
    """What ``measure`` saw. Out of memory gives ``seconds = extra_peak_bytes = inf`` and ``result = None``.

    Attributes:
        seconds: median wall time of the timed runs.
        run_seconds: every timed run, in order.
        extra_peak_bytes: peak memory above what was in use just before the first call (process RSS on CPU,
            torch's allocator on CUDA); NaN where the platform cannot reset its peak counter.
        out_of_memory: a call raised an out-of-memory error.
        result: the last call's return value.
    """

    seconds: float
    run_seconds: list[float]
    extra_peak_bytes: float
    out_of_memory: bool
    result: Any


def measure(
    fn: Callable[[], Any],
    device: str,
    *,
    repeats: int = 5,
    budget_s: float = CASE_BUDGET_S,
) -> Measurement:
    """Times ``fn()`` on ``device`` and records its peak extra memory.

    The first call is a warm-up unless it takes over ``WARMUP_BELOW_S``, in which case it counts as a timed run.
    The first timed run then sets how many follow: ``repeats`` in all, or fewer (at least one) when that would
    exceed ``budget_s``, or more (up to ``MAX_RUNS``) when ``repeats`` runs would take under ``MIN_TIMED_S``.
    Memory is the peak over all calls, warm-up included, above the usage just before the first.

    Args:
        fn: the work, with its inputs already on ``device``.
        device: ``"cpu"`` or ``"cuda"`` (CUDA timings synchronise the device before and after each call).
        repeats: timed runs wanted.
        budget_s: time the timed runs may take, as estimated from the first timed run.

    Returns:
        The ``Measurement``; an out-of-memory error is recorded there rather than raised.
    """
    peak = _PeakMemory(device)
    try:
        seconds, result = _timed_call(fn, device)
        if seconds < WARMUP_BELOW_S:
            # That was the warm-up. It pays one-off costs (lazy kernel loading, cuBLAS heuristics, first touch of
            # pages) and can be ten times slower than a timed run, so the run count comes from the next call.
            result = None
            seconds, result = _timed_call(fn, device)
        runs = [seconds]
        wanted = _timed_runs(seconds, repeats, budget_s)
        while len(runs) < wanted:
            result = None  # release the previous output so it does not count towards the next call's peak
            seconds, result = _timed_call(fn, device)
            runs.append(seconds)
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as error:
        if not _is_out_of_memory(error):
            raise
        if device == "cuda":
            torch.cuda.empty_cache()
        return Measurement(math.inf, [], math.inf, True, None)
    return Measurement(statistics.median(runs), runs, peak.stop(), False, result)


def _timed_runs(per_run_s: float, repeats: int, budget_s: float) -> int:
    """How many timed runs in all, given the first one's time."""
    per_run = max(per_run_s, 1e-9)
    if per_run * repeats < MIN_TIMED_S:
        return min(MAX_RUNS, max(repeats, int(MIN_TIMED_S / per_run)))
    return max(1, min(repeats, int(budget_s / per_run)))


def _timed_call(fn: Callable[[], Any], device: str) -> tuple[float, Any]:
    _synchronize(device)
    start = time.perf_counter()
    result = fn()
    _synchronize(device)
    return time.perf_counter() - start, result


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _is_out_of_memory(error: BaseException) -> bool:
    # torch's CPU allocator raises a plain RuntimeError ("DefaultCPUAllocator: can't allocate memory").
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    message = str(error)
    return "can't allocate memory" in message or "out of memory" in message


class _PeakMemory:
    """Peak memory above the current usage, from construction to ``stop()``."""

    def __init__(self, device: str) -> None:
        self.device = device
        gc.collect()
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return
        _release_free_heap()
        self.resettable = _reset_cpu_peak()
        self.base = _status_bytes("VmRSS")

    def stop(self) -> float:
        """Peak bytes above the usage at construction (NaN where the CPU peak counter could not be reset)."""
        if self.device == "cuda":
            torch.cuda.synchronize()
            return float(torch.cuda.max_memory_allocated() - self.base)
        if not self.resettable:
            return math.nan
        return float(max(0, _status_bytes("VmHWM") - self.base))


def _reset_cpu_peak() -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0: "5" to clear_refs); False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _status_bytes(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # the kernel reports kB
    raise RuntimeError(f"{field} not found in {_STATUS}")


def _release_free_heap() -> None:
    # glibc keeps freed blocks below its mmap threshold (up to 32 MB) resident; a later call reusing them would
    # not raise RSS and its peak would read low. malloc_trim hands them back first. Other C libraries: no-op.
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    trim = getattr(ctypes.CDLL(libc_name), "malloc_trim", None)
    if trim is not None:
        trim(0)


def environment(device: str) -> dict[str, Any]:
    """Provenance for a JSON line: build, versions, device name, threads and time.

    Args:
        device: ``"cpu"`` or ``"cuda"``.

    Returns:
        dict with ``build_info`` (``weightmem_fast.build_info()``), ``cuda_available``, ``torch``, ``python``,
        ``device``, ``device_name``, ``threads`` (torch intra-op threads), ``cpu_count``, ``timestamp`` (UTC) and,
        on CUDA, ``cuda_matmul_fp32_precision`` and ``float32_matmul_precision`` (whether torch matmuls, hence
        GEMM baselines, may use TF32: "none" defers to the second, whose default "highest" means no).
    """
    info: dict[str, Any] = {
        "build_info": wmf.build_info(),
        "cuda_available": wmf.cuda_available(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if device == "cuda":
        info["cuda_matmul_fp32_precision"] = torch.backends.cuda.matmul.fp32_precision
        info["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    return info


def device_name(device: str) -> str:
    """The GPU name for ``"cuda"``; for ``"cpu"`` the model name in /proc/cpuinfo (else ``platform.processor()``)."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Appends ``record`` to ``path`` as one line of strict JSON.

    Non-finite floats (``inf`` for out of memory, ``nan`` for unmeasured) are written as the strings
    ``"inf"``, ``"-inf"`` and ``"nan"``: strict JSON has no such numbers, and ``float()`` reads the strings back.
    """
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(_strict_json(record), allow_nan=False) + "\n")


def _strict_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(item) for item in value]
    return value


def format_value(value: float | None, spec: str) -> str:
    """A table cell: "-" when absent, "OOM" for out of memory (inf), "n/a" when not measurable here (NaN)."""
    if value is None:
        return "-"
    if value == float("inf"):
        return "OOM"
    if value != value:
        return "n/a"
    return spec.format(value)


def run_cases(op: str, args: Any, env: dict[str, Any], todo: Sequence[Any],
              run_case: Callable[[Any, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs each case on ``args.device``; every record carries ``env`` and goes to ``args.out`` as it finishes."""
    records = []
    for case in todo:
        record = {"op": op, "size_preset": args.sizes, **env, **run_case(case, args.device)}
        records.append(record)
        if args.out:
            append_jsonl(args.out, record)
    return records


def print_report(op: str, device: str, env: dict[str, Any], detail: str, header: Sequence[str],
                 rows: Sequence[Sequence[str]], legend: dict[str, str], targets: Sequence[str]) -> None:
    """The one-line provenance, the table, the method legend and one ``target:`` line per issue target."""
    build = env["build_info"]
    print(f"{op} on {device} ({env['device_name']}), {env['threads']} torch threads, torch {env['torch']}, "
          f"weightmem_fast {build['version']} (openmp {build['openmp']}); {detail}")
    print(format_table(header, rows))
    for name, description in legend.items():
        print(f"  {name}: {description}")
    print("\n".join(f"target: {line}" for line in targets))


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned text columns separated by two spaces, with a rule under the header."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
