"""Strong scaling of ``sharded_nearest`` over Gloo CPU processes on this machine (issue 10; docs/distributed.md).

    python -m weightmem_fast.distributed.scaling --rows 16000 --width 7960 --queries 200 --worlds 1 2 4

For each world size W it starts W processes (one torch thread each, localhost TCP store), gives each its
``shard_rows`` share of a random reference set [rows, width] float32, and times ``sharded_nearest`` of the same
queries (k nearest, median of ``--repeats`` after one warm-up, each run from a barrier to the end of an all-reduce
of the ranks' CPU times). Prints one JSON line per W: wall time, speed-up over the first W listed, the CPU seconds
of the busiest rank (the work split, which cores shared with other jobs do not distort much), and the machine.
Wall-time speed-ups mean something only with W <= free cores.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import time
from datetime import date, timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .neighbors import sharded_nearest
from .shards import shard_rows


def _rank(rank: int, world: int, port: int, args: argparse.Namespace, results: "mp.Queue") -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(minutes=5))
    start, stop = shard_rows(args.rows, rank, world)
    shard = torch.randn(stop - start, args.width, generator=torch.Generator().manual_seed(1000 + rank))
    query = torch.randn(args.queries, args.width, generator=torch.Generator().manual_seed(0))
    sharded_nearest(query[:2], shard, args.k)  # warm-up: Gloo connections, kernel first touch
    times, cpu = [], []
    for _ in range(args.repeats):
        dist.barrier()
        begin, begin_cpu = time.perf_counter(), time.process_time()
        sharded_nearest(query, shard, args.k)
        busiest = torch.tensor([time.process_time() - begin_cpu], dtype=torch.float64)
        dist.all_reduce(busiest, op=dist.ReduceOp.MAX)
        times.append(time.perf_counter() - begin)
        cpu.append(float(busiest))
    if rank == 0:
        results.put((statistics.median(times), statistics.median(cpu)))
    dist.destroy_process_group()


def _time(world: int, args: argparse.Namespace) -> tuple[float, float]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = mp.get_context("spawn")
    results = context.Queue()
    procs = [context.Process(target=_rank, args=(r, world, port, args, results)) for r in range(world)]
    for proc in procs:
        proc.start()
    seconds = results.get(timeout=1800)
    for proc in procs:
        proc.join()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=16000, help="reference rows M (default 16000)")
    parser.add_argument("--width", type=int, default=7960, help="parameters per model D (default 7960, G.pt's MLP)")
    parser.add_argument("--queries", type=int, default=200, help="replicated query rows N (default 200)")
    parser.add_argument("--k", type=int, default=3, help="neighbours per query (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per world size (default 3)")
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4], help="process counts (default 1 2 4)")
    args = parser.parse_args()
    first = None
    for world in args.worlds:
        seconds, cpu = _time(world, args)
        first = first or seconds
        print(json.dumps({"world": world, "seconds": round(seconds, 3), "speedup": round(first / seconds, 2),
                          "busiest_rank_cpu_seconds": round(cpu, 3),
                          "rows": args.rows, "width": args.width, "queries": args.queries, "k": args.k,
                          "cpu_count": os.cpu_count(), "torch": torch.__version__, "machine": platform.processor()
                          or platform.machine(), "date": date.today().isoformat()}), flush=True)


if __name__ == "__main__":
    main()
