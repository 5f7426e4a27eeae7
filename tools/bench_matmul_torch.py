#!/usr/bin/env python3
"""PyTorch CPU reference for GradOT Studio's matmul benchmark (src/engine/bench.ts).

Prints one JSON line: {"torchVersion", "threads", "results": [{"n", "gflops", "seconds"}]} for float32
square matmuls, timed like the TypeScript side: warm-up, then the median of several runs, each repeating
the product until at least 50 ms have passed. Run with Debian's /usr/bin/python3 (torch 1.13 CPU).
"""
import argparse
import json
import statistics
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="128,256,512")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    ap.add_argument("--min-seconds", type=float, default=0.05)
    a = ap.parse_args()
    try:
        import torch
    except Exception as e:  # torch missing: report instead of a traceback
        print(json.dumps({"error": f"torch is not importable by {sys.executable}: {e}"}))
        return
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    torch.manual_seed(1234)
    results = []
    for n in [int(s) for s in a.sizes.split(",") if s]:
        x = torch.rand(n, n, dtype=torch.float32) * 2 - 1
        y = torch.rand(n, n, dtype=torch.float32) * 2 - 1
        for _ in range(3):
            torch.mm(x, y)
        times = []
        cpu_times = []
        for _ in range(a.runs):
            reps = 0
            t0 = time.perf_counter()
            c0 = time.process_time()
            while True:
                torch.mm(x, y)
                reps += 1
                dt = time.perf_counter() - t0
                if dt >= a.min_seconds:
                    break
            cpu_times.append((time.process_time() - c0) / reps)
            times.append(dt / reps)
        sec = statistics.median(times)
        cpu = statistics.median(cpu_times)
        # cpuGflops: by process CPU time (all threads), fairer than wall time on a shared machine.
        results.append({"n": n, "gflops": 2 * n ** 3 / sec / 1e9, "seconds": sec,
                        "cpuGflops": 2 * n ** 3 / cpu / 1e9 if cpu > 0 else None})
    print(json.dumps({"torchVersion": torch.__version__, "threads": torch.get_num_threads(), "results": results}))


if __name__ == "__main__":
    main()
