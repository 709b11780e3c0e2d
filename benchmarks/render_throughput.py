"""Throughput of the built-in 3D renderer (``sslequi-data render3d``) against its targets.

Targets (issue: the built-in 3D benchmark): ≥ 100 images/s at 64 px and ≥ 30 images/s at
128 px on 2 CPU cores, with shadows. Printed per resolution:

- ``1 proc × 1 thr`` / ``1 proc × 2 thr``: one process tracing with 1 or 2 torch threads
  (wall clock; on a loaded machine 2 intra-op threads can be far slower than 1, which is
  why the generator uses processes of one thread each);
- ``2 proc × 1 thr``: the generator's own path (``generate`` with 2 worker processes, one
  thread each, JPEG encode and file writes included; worker start-up excluded by timing
  a warm-up run first is not possible across processes, so the figure includes it);
- ``cpu-time × cores``: single-thread images per CPU-second × the core count, a figure
  that does not depend on other processes loading a shared machine;
- the same tracer without ray compaction and without shadows, measured in the same run,
  as ratios (what compaction buys, what shadows cost);
- on a CUDA device, the GPU's images/s.

Usage: ``python benchmarks/render_throughput.py [--cores 2] [--objects 24] [--resolutions 64 128]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from sslequi.data.render.generate import SMALL_CLASSES, RenderConfig, generate, object_geometry
from sslequi.data.render.scene import ViewBatch, sample_latents
from sslequi.data.render.shapes import class_by_name
from sslequi.data.render.tracer import TraceSettings, render_views

TARGETS = {64: 100.0, 128: 30.0}
VIEWS = 12


def _workload(objects: int, device: str) -> list[tuple[object, torch.Tensor, ViewBatch]]:
    jobs = []
    for i in range(objects):
        cls = class_by_name(SMALL_CLASSES[i % len(SMALL_CLASSES)])
        shape, palette = object_geometry(cls, seed=0, index=i)
        if device != "cpu":
            from sslequi.data.render.sdf import CompiledShape

            shape, palette = CompiledShape(shape.prims, device), palette.to(device)
        latents = sample_latents(np.random.default_rng(i), VIEWS, "standard")
        jobs.append((shape, palette, ViewBatch.from_latents(latents, device)))
    return jobs


def _measure(
    jobs: list, resolution: int, settings: TraceSettings, threads: int, device: str = "cpu"
) -> tuple[float, float]:
    """(wall images/s, images per CPU-second)."""
    torch.set_num_threads(threads)
    shape, palette, views = jobs[0]
    render_views(shape, palette, views, resolution, settings)  # warm-up
    if device != "cpu":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    for shape, palette, views in jobs:
        render_views(shape, palette, views, resolution, settings)
    if device != "cpu":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    images = len(jobs) * VIEWS
    return images / wall, images / max(cpu, 1e-9)


def _generate_rate(resolution: int, objects: int, workers: int) -> tuple[float, bool]:
    """images/s of ``generate`` with ``workers`` processes, and whether files match 1 worker."""
    per_class = max(1, objects // len(SMALL_CLASSES))
    with tempfile.TemporaryDirectory() as tmp:
        config = RenderConfig(
            out=Path(tmp) / "multi", classes=SMALL_CLASSES, objects_per_class=per_class,
            views_per_object=VIEWS, resolution=resolution, workers=workers, progress=False,
        )  # fmt: skip
        start = time.perf_counter()
        summary = generate(config)
        rate = summary.num_images / (time.perf_counter() - start)
        single = replace(
            config,
            out=Path(tmp) / "single",
            workers=1,
            classes=SMALL_CLASSES[:2],
            objects_per_class=1,
        )
        multi = replace(
            config, out=Path(tmp) / "multi2", classes=SMALL_CLASSES[:2], objects_per_class=1
        )
        generate(single)
        generate(multi)
        same = all(
            p.read_bytes() == (multi.out / p.relative_to(single.out)).read_bytes()
            for p in single.out.rglob("*.jpg")
        )
    return rate, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--objects", type=int, default=24, help="objects of 12 views per measurement"
    )
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--skip-generate", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"render throughput, {args.objects} objects × {VIEWS} views, shadows on; "
          f"{os.cpu_count()} CPUs visible, load average {load:.1f}")  # fmt: skip
    header = f"{'res':>4} {'1 proc×1 thr':>13} {'1 proc×2 thr':>13} {'2 proc×1 thr':>13} {'cpu-time×cores':>15} {'target':>7}  {'compaction gain':>15} {'shadow cost':>11}"
    print(header)
    jobs = _workload(args.objects, "cpu")
    for res in args.resolutions:
        full = TraceSettings()
        wall2, _ = _measure(jobs, res, full, threads=args.cores)
        wall1, per_cpu = _measure(jobs, res, full, threads=1)
        _, per_cpu_naive = _measure(
            jobs[: max(2, len(jobs) // 4)], res, replace(full, compact_every=10**9), threads=1
        )
        _, per_cpu_noshadow = _measure(jobs, res, replace(full, shadows=False), threads=1)
        gen = float("nan")
        same = None
        if not args.skip_generate:
            gen, same = _generate_rate(res, args.objects, args.cores)
        estimate = per_cpu * args.cores
        target = TARGETS.get(res, float("nan"))
        verdict = "OK" if max(estimate, gen if gen == gen else 0) >= target else "BELOW"
        print(
            f"{res:>4} {wall1:>13.1f} {wall2:>13.1f} {gen:>13.1f} {estimate:>15.1f} {target:>7.0f}  "
            f"{per_cpu / per_cpu_naive:>14.2f}× {per_cpu_noshadow / per_cpu:>10.2f}×  {verdict}"
            + ("" if same is None else f"  workers=2 files identical to workers=1: {same}")
        )
    if torch.cuda.is_available():
        gpu_jobs = _workload(args.objects, "cuda")
        for res in [*args.resolutions, 256]:
            rate, _ = _measure(gpu_jobs, res, TraceSettings(), threads=1, device="cuda")
            print(
                f"GPU {torch.cuda.get_device_name()}: {res} px {rate:.1f} images/s (tracing only)"
            )
    else:
        print("GPU: no CUDA device here")


if __name__ == "__main__":
    main()
