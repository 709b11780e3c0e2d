"""``sslequi-data render3d``: render the built-in 3D benchmark in the 3DIEBench layout."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sslequi.cli.data import register_subcommand
from sslequi.data.render.generate import PRESETS, RenderConfig, default_workers, generate
from sslequi.data.render.shapes import CLASSES
from sslequi.data.render.tracer import TraceSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True,
                        help="tiny: seconds, for tests; small: 12 classes × 40 objects × 12 views "
                        "at 64 px (CPU demos); full: all classes × 200 × 50 at 256 px (GPU)")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="dataset root to write")
    parser.add_argument("--variant", choices=["standard", "T", "OOD"], default="standard",
                        help="T: + translation (10 latents); OOD: val objects, angles in ±[π/2, π]")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resolution", type=int, default=None, help="override the preset's")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="parallel processes (one thread each)")  # fmt: skip
    parser.add_argument("--objects-per-class", type=int, default=None)
    parser.add_argument("--views", type=int, default=None, help="views per object")
    parser.add_argument("--classes", nargs="+", default=None,
                        choices=[c.name for c in CLASSES], metavar="CLASS",
                        help=f"subset of: {' '.join(c.name for c in CLASSES)}")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--supersample", type=int, default=1,
                        help="s×s rays per pixel, averaged (anti-aliasing; s² the cost)")  # fmt: skip
    parser.add_argument("--bgr", action="store_true",
                        help="write R/B-swapped JPEGs like the real files probably are")  # fmt: skip


@register_subcommand(
    "render3d", help="render the built-in 3D benchmark", add_arguments=add_arguments
)
def run(args: argparse.Namespace) -> int:
    config = RenderConfig.from_preset(
        args.preset,
        args.out,
        variant=args.variant,
        seed=args.seed,
        resolution=args.resolution,
        workers=1 if args.device != "cpu" else args.workers,
        objects_per_class=args.objects_per_class,
        views_per_object=args.views,
        classes=tuple(args.classes) if args.classes else None,
        device=args.device,
        channel_order="bgr" if args.bgr else "rgb",
        trace=TraceSettings(supersample=args.supersample),
    )
    start = time.perf_counter()
    summary = generate(config)
    seconds = time.perf_counter() - start
    print(
        f"wrote {summary.num_images} images of {summary.num_objects} objects to {summary.out} "
        f"in {seconds:.1f} s ({summary.num_images / seconds:.1f} images/s); "
        f"check it with: sslequi-data check {summary.out}"
    )
    return 0
