"""An independent SimCLR / CARE reference on the built-in renders read as 2D images, scored
by the harness's own probes (issue 13: "a minimal independent CARE on the same data").

What it is. A plain CNN (``benchmarks/reference_sie.py``'s ``ReferenceCNN`` and projector,
themselves independent of the harness), NT-Xent (methods.md §1.2) and CARE's loss (§8.1)
written here from the equations, and the augmentations written here with torchvision's
functional ops on tensors (parameters drawn here, not by ``sslequi.augment``). Nothing comes
from ``sslequi.methods`` or ``sslequi.models``. The data is shared on purpose: the harness's
``render2d`` reader (every view of an object one image, the objects' train/val split kept)
at the study's resolution and normalisation (``configs/dataset/render2d_small.yaml``).
Scoring is the harness's too: the trained CNN is wrapped in a tiny ``Method`` adapter that
declares the unit projector output, and handed to ``sslequi.study.evaluate_in_memory``
(linear, kNN and the orthogonality probe on the backbone and ẑ), so the rows are comparable
with ``benchmarks/compare_2d.py``'s.

Model. ``ReferenceCNN(width)``: 8 × (conv 3×3 → BN → ReLU), strides 1-2-1-2-1-2-1-1
(32 px → 4×4), global average pool; ``--width 8`` → 64-d y (the study's backbone width).
Projector Lin(d, 128)-BN-ReLU-Lin(128, 128, no bias); ẑ = g(y)/‖g(y)‖.

Losses (B = batch, τ = 0.5):
  SimCLR L = NT-Xent(ẑ¹, ẑ²): u = [ẑ¹; ẑ²], s = uuᵀ/τ, ℓ_i = −log e^{s_{i,p(i)}} / Σ_{k≠i} e^{s_ik},
         mean over the 2B rows (2B − 2 negatives each);
  CARE   L = NT-Xent(ẑ¹, ẑ²) + λ L_equi, on two further views t₁X, t₂X where every chunk c of
         n images shares one pair (t₁, t₂) (independent pairs per chunk), G = ẐẐᵀ,
         L_c = (2/n) Σ_i Σ_{j≠i} (G¹_ij − G²_ij)², L_equi = (1/K) Σ_c L_c.
Augmentation (CARE CIFAR, §8.3; the study's crop scale): RandomResizedCrop(32, scale
``--crop-scale``, ratio 3/4–4/3), flip 0.5, ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8 in a
random order, grayscale 0.2, Gaussian blur (k 3, σ ∈ [0.1, 2]) p 0.5, then the dataset's
normalisation. Adam (lr ``--lr``, wd 1e-6, constant), batch 64 images drawn without
replacement within an epoch, one torch thread.

    python benchmarks/reference_care.py --seeds 0 1 2 --out runs/reference_care

Writes ``OUT/reference_<method>_s<seed>/results.json`` and ``reference.json`` (CPU seconds,
first/last loss terms), ``OUT/study.json`` (``sslequi.study``'s manifest format) and
``OUT/comparison.md``; prints the headline table (mean ± std over seeds) and CARE's
projector-residual reduction against SimCLR.

RESULTS (2026-12-01, 15:19–15:54 UTC, seeds 0 1, one thread beside other jobs, load average
1.9–4.4 on 2 cores; ``small`` render preset, 32 px, the defaults above = the 2D study's
budget: 300 steps × 64, λ 0.03, chunks of 16, crop 0.08–1, Adam 3e-3; val split):

  | method           | top-1         | kNN top-1     | ẑ residual (all) | y residual (all) |
  | reference_simclr | 0.092 ± 0.004 | 0.097 ± 0.012 | 0.715 ± 0.015    | 0.521 ± 0.028    |
  | reference_care   | 0.097 ± 0.004 | 0.114 ± 0.012 | 0.621 ± 0.029    | 0.563 ± 0.075    |

  floors: chance 0.083, ẑ residual 1.114, y residual 0.981. CARE/SimCLR ẑ residual 0.87
  (grayscale 0.77, flip 0.70, jitter 0.89, crop 0.98, blur 1.18); CPU per run: SimCLR
  1.0 + 0.5 (pretrain + evaluate) CPU-min, CARE 1.5 + 0.5. The harness's rows at the same
  budget (README, 3 seeds): CARE/SimCLR 0.89, both near chance in top-1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep, not spin
os.environ.setdefault("WANDB_SILENT", "true")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torchvision.transforms.v2 import functional as TF  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_sie import ReferenceCNN, RunRecord, projector, write_manifest  # noqa: E402

from sslequi.data.render2d import Render2DConfig, RenderSingleViews  # noqa: E402
from sslequi.methods.base import Method, MethodConfig  # noqa: E402
from sslequi.types import Batch, MethodSpec, StepOutput  # noqa: E402

METHODS = ("simclr", "care")
PROBES = ("linear", "knn", "orthogonality")
DATASET_YAML = (
    Path(__file__).resolve().parent.parent / "configs" / "dataset" / "render2d_small.yaml"
)
PRETRAINED = "pretrained.pt"


@dataclass(frozen=True)
class Settings:
    """One run's training settings (the study's budget; ``--help`` for each)."""

    steps: int = 300
    batch_size: int = 64
    width: int = 8
    lr: float = 3e-3
    temperature: float = 0.5
    equivariance_weight: float = 0.03  # λ
    chunk_size: int = 16  # n; K = batch / n
    crop_scale: tuple[float, float] = (0.08, 1.0)
    projector: tuple[int, int] = (128, 128)


# ----------------------------------------------------------------------------- losses


def nt_xent(z_1: Tensor, z_2: Tensor, temperature: float) -> Tensor:
    """NT-Xent (§1.2) on unit rows: cross-entropy of each of the 2B rows against its partner
    over the other 2B − 1 rows (itself excluded)."""
    u = torch.cat([F.normalize(z_1, dim=1), F.normalize(z_2, dim=1)])
    logits = u @ u.T / temperature
    logits = logits.masked_fill(torch.eye(len(u), dtype=torch.bool), float("-inf"))
    b = len(z_1)
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)])
    return F.cross_entropy(logits, partner)


def care_equivariance(z_1: Tensor, z_2: Tensor, chunk_size: int) -> Tensor:
    """L_equi (§8.1): the mean over chunks of (2/n) Σ_i Σ_{j≠i} (⟨ẑ¹_i, ẑ¹_j⟩ − ⟨ẑ²_i, ẑ²_j⟩)²
    on consecutive chunks of ``chunk_size`` unit rows."""
    if len(z_1) % chunk_size:
        raise ValueError(f"{len(z_1)} rows do not split into chunks of {chunk_size}")
    losses = []
    for start in range(0, len(z_1), chunk_size):
        a, b = z_1[start : start + chunk_size], z_2[start : start + chunk_size]
        difference = a @ a.T - b @ b.T
        difference = difference - torch.diag(torch.diagonal(difference))
        losses.append(2.0 / chunk_size * difference.pow(2).sum())
    return torch.stack(losses).mean()


# ----------------------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class AugParams:
    """One draw of the augmentation: crop box (top, left, height, width), flip, jitter
    factors and their order (None: skipped), grayscale, blur σ (None: skipped)."""

    box: tuple[int, int, int, int]
    flip: bool
    jitter: tuple[float, float, float, float] | None  # brightness, contrast, saturation, hue
    jitter_order: tuple[int, ...]
    grayscale: bool
    blur_sigma: float | None


def draw_params(rng: random.Random, size: int, scale: tuple[float, float]) -> AugParams:
    """RandomResizedCrop (ratio 3/4–4/3, 10 tries, else the whole image), flip 0.5,
    ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, grayscale 0.2, blur σ ∈ [0.1, 2] p 0.5."""
    box = (0, 0, size, size)
    for _ in range(10):
        area = size * size * rng.uniform(*scale)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < w <= size and 0 < h <= size:
            box = (rng.randint(0, size - h), rng.randint(0, size - w), h, w)
            break
    flip = rng.random() < 0.5
    jitter = None
    order = tuple(rng.sample(range(4), 4))
    if rng.random() < 0.8:
        jitter = (
            rng.uniform(0.6, 1.4),
            rng.uniform(0.6, 1.4),
            rng.uniform(0.6, 1.4),
            rng.uniform(-0.1, 0.1),
        )
    grayscale = rng.random() < 0.2
    sigma = rng.uniform(0.1, 2.0) if rng.random() < 0.5 else None
    return AugParams(box, flip, jitter, order, grayscale, sigma)


def apply_params(images: Tensor, p: AugParams) -> Tensor:
    """``images`` [n, 3, H, W] in [0, 1], all transformed by the one draw ``p``."""
    size = images.shape[-1]
    top, left, h, w = p.box
    x = TF.resized_crop(images, top, left, h, w, [size, size], antialias=True)
    if p.flip:
        x = TF.horizontal_flip(x)
    if p.jitter is not None:
        adjust = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
        for k in p.jitter_order:
            x = adjust[k](x, p.jitter[k])
    if p.grayscale:
        x = TF.rgb_to_grayscale(x, num_output_channels=3)
    if p.blur_sigma is not None:
        x = TF.gaussian_blur(x, [3, 3], [p.blur_sigma, p.blur_sigma])
    return x.clamp(0.0, 1.0)


def per_sample_view(images: Tensor, rng: random.Random, scale: tuple[float, float]) -> Tensor:
    """Each image its own draw (the InfoNCE views)."""
    size = images.shape[-1]
    return torch.cat([apply_params(x[None], draw_params(rng, size, scale)) for x in images])


def chunk_shared_pair(
    images: Tensor, chunk_size: int, rng: random.Random, scale: tuple[float, float]
) -> tuple[Tensor, Tensor]:
    """(t₁X, t₂X) with one pair (t₁, t₂) per chunk of ``chunk_size`` images, drawn
    independently for each chunk (CARE's equivariance views)."""
    size = images.shape[-1]
    first, second = [], []
    for start in range(0, len(images), chunk_size):
        chunk = images[start : start + chunk_size]
        first.append(apply_params(chunk, draw_params(rng, size, scale)))
        second.append(apply_params(chunk, draw_params(rng, size, scale)))
    return torch.cat(first), torch.cat(second)


# ----------------------------------------------------------------------------- data


def render2d_config(root: Path, resolution: int = 32) -> Render2DConfig:
    """The study's ``render2d`` dataset (its mean/std) on ``root`` at ``resolution``."""
    from omegaconf import OmegaConf

    values = OmegaConf.to_container(OmegaConf.load(DATASET_YAML))
    assert isinstance(values, dict)
    values.update(root=str(root), resolution=resolution)
    return Render2DConfig(**{str(k): v for k, v in values.items()})


@dataclass
class ImageSampler:
    """Every train image in memory ([N, 3, H, W] floats in [0, 1]); batches without
    replacement within an epoch; the dataset's normalisation."""

    images: Tensor
    mean: Tensor
    std: Tensor
    seed: int
    _order: list[int] = field(default_factory=list)

    @classmethod
    def load(cls, config: Render2DConfig, seed: int) -> ImageSampler:
        dataset = RenderSingleViews(config, "train", 1)
        images = torch.stack([dataset[i].images[0] for i in range(len(dataset))])
        mean = torch.tensor(config.mean).view(1, 3, 1, 1)
        std = torch.tensor(config.std).view(1, 3, 1, 1)
        return cls(images.float() / 255.0, mean, std, seed)

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)

    def batch(self, batch_size: int) -> Tensor:
        if batch_size > len(self.images):
            raise ValueError(f"batch {batch_size} > {len(self.images)} train images")
        if len(self._order) < batch_size:  # a new epoch; the remainder is dropped
            self._order = torch.randperm(len(self.images), generator=self.generator).tolist()
        chosen, self._order = self._order[:batch_size], self._order[batch_size:]
        return self.images[chosen]

    def normalise(self, images: Tensor) -> Tensor:
        return (images - self.mean) / self.std


# ----------------------------------------------------------------------------- model


class ContrastiveModel(nn.Module):
    """Backbone and projector; ``embed`` gives the unit projection ẑ."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.backbone = ReferenceCNN(settings.width)
        self.projector = projector(self.backbone.feature_dim, settings.projector)

    def embed(self, images: Tensor) -> Tensor:
        return F.normalize(self.projector(self.backbone(images)), dim=1)


class ReferenceMethod(Method):
    """The trained model as the harness's ``Method``, only so its probes can read it: the
    backbone is ``full``, the unit projector output ``projector``."""

    def __init__(self, model: ContrastiveModel, name: str) -> None:
        super().__init__(MethodConfig(name=name), model.backbone, model.backbone.feature_dim)
        self.head = model.projector

    def spec(self) -> MethodSpec:
        return MethodSpec()

    def forward(self, batch: Batch) -> StepOutput:
        raise NotImplementedError("the reference trains itself; this adapter only encodes")

    def encode(self, images: Tensor) -> Tensor:
        return self.backbone(images)

    def project(self, y: Tensor) -> Tensor:
        return F.normalize(self.head(y), dim=1)


# ----------------------------------------------------------------------------- runs


def pretrain(
    method: str, sampler: ImageSampler, settings: Settings, seed: int, log_every: int = 50
) -> tuple[ContrastiveModel, dict[str, float], dict[str, float]]:
    """Train one model; returns it and the first and last steps' loss terms."""
    if settings.batch_size % settings.chunk_size:
        raise ValueError(
            f"--batch-size {settings.batch_size} must split into chunks of --chunk-size "
            f"{settings.chunk_size}"
        )
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = ContrastiveModel(settings)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=1e-6)
    model.train()
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for step in range(settings.steps):
        images = sampler.batch(settings.batch_size)
        view_1 = per_sample_view(images, rng, settings.crop_scale)
        view_2 = per_sample_view(images, rng, settings.crop_scale)
        z_1 = model.embed(sampler.normalise(view_1))
        z_2 = model.embed(sampler.normalise(view_2))
        terms = {"nt_xent": nt_xent(z_1, z_2, settings.temperature)}
        loss = terms["nt_xent"]
        if method == "care":
            t_1, t_2 = chunk_shared_pair(images, settings.chunk_size, rng, settings.crop_scale)
            equi = care_equivariance(
                model.embed(sampler.normalise(t_1)),
                model.embed(sampler.normalise(t_2)),
                settings.chunk_size,
            )
            terms["equivariance"] = equi
            loss = loss + settings.equivariance_weight * equi
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        last = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}
        if not math.isfinite(last["loss"]):
            raise FloatingPointError(f"{method} seed {seed}: loss {last['loss']} at step {step}")
        if step == 0:
            first = dict(last)
        if log_every and (step % log_every == 0 or step == settings.steps - 1):
            shown = " ".join(f"{k} {v:.4f}" for k, v in last.items())
            print(f"  [{method} s{seed}] step {step:4d}: {shown}", flush=True)
    return model, first, last


def run_one(
    method: str,
    seed: int,
    args: argparse.Namespace,
    settings: Settings,
    sampler: ImageSampler,
    config: Render2DConfig,
) -> RunRecord:
    from sslequi.study import evaluate_in_memory

    name = f"reference_{method}"
    run_dir = args.out.resolve() / f"{name}_s{seed}"
    saved = run_dir / PRETRAINED
    recorded = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.__dict__.items()}
    state = torch.load(saved) if args.resume and saved.is_file() else None
    done = run_dir / "reference.json"
    if state is not None and state["settings"] == recorded and done.is_file():
        print(f"=== {run_dir.name}: done (reference.json), kept ===", flush=True)
        return RunRecord(**json.loads(done.read_text()))
    if state is not None and state["settings"] == recorded:
        print(f"=== {run_dir.name}: reusing {PRETRAINED} ===", flush=True)
        model = ContrastiveModel(settings)
        model.load_state_dict(state["model"])
        first, last = state["first"], state["last"]
        pretrain_cpu, pretrain_wall = state["cpu_s"], state["wall_s"]
    else:
        print(f"=== {run_dir.name}: pretraining ({settings.steps} × {settings.batch_size}) ===")
        cpu, wall = time.process_time(), time.perf_counter()
        model, first, last = pretrain(method, sampler, settings, seed, args.log_every)
        pretrain_cpu, pretrain_wall = time.process_time() - cpu, time.perf_counter() - wall
        run_dir.mkdir(parents=True, exist_ok=True)
        state = {"model": model.state_dict(), "settings": recorded, "first": first, "last": last}
        state.update(cpu_s=pretrain_cpu, wall_s=pretrain_wall)
        torch.save(state, saved)  # kept, so ``--resume`` need not retrain it
    print(f"=== {run_dir.name}: evaluating ===", flush=True)
    model.eval()
    adapter = ReferenceMethod(model, name)
    cpu, wall = time.process_time(), time.perf_counter()
    evaluate_in_memory(
        adapter,
        args.root.resolve(),
        run_dir,
        seed,
        probes=tuple(args.probes),
        dataset=config,
        probe={"orthogonality": {"parts": ["full", "projector"], "families": args.families}},
    )
    record = RunRecord(
        name=name,
        seed=seed,
        run_dir=run_dir.name,
        cpu_s={"pretrain": pretrain_cpu, "evaluate": time.process_time() - cpu},
        wall_s={"pretrain": pretrain_wall, "evaluate": time.perf_counter() - wall},
        first_terms=first,
        last_terms=last,
    )
    (run_dir / "reference.json").write_text(json.dumps(record.__dict__, indent=2))
    print(f"    CPU s: pretrain {pretrain_cpu:.0f}, evaluate {record.cpu_s['evaluate']:.0f}")
    return record


def _mean(values: Sequence[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def _std(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def _shown(values: Sequence[float]) -> str:
    """Mean ± std over seeds (the mean alone for one seed)."""
    return f"{_mean(values):.3f}" + (f" ± {_std(values):.3f}" if len(values) > 1 else "")


def checks(out: Path) -> str:
    """CARE against SimCLR: the projector residual's reduction, the top-1 difference."""
    from sslequi.study import group_runs, metric_values

    groups = group_runs(out)
    care, simclr = groups.get("reference_care", []), groups.get("reference_simclr", [])
    if not (care and simclr):
        return "(needs both care and simclr runs)"
    lines = []
    for part in ("projector", "full"):
        for family in ("all", "crop", "color_jitter", "blur", "flip", "grayscale"):
            ours = metric_values(care, "orthogonality", f"residual_{family}", part)
            base = metric_values(simclr, "orthogonality", f"residual_{family}", part)
            if ours and base:
                lines.append(
                    f"{part} residual ({family}): CARE {_shown(ours)}, SimCLR {_shown(base)}; "
                    f"CARE/SimCLR {_mean(ours) / _mean(base):.2f}"
                )
    top_care = metric_values(care, "linear", "top1")
    top_simclr = metric_values(simclr, "linear", "top1")
    paired = [a - b for a, b in zip(top_care, top_simclr, strict=False)]
    if paired:
        spread = f" (std {_std(paired):.3f})" if len(paired) > 1 else ""
        lines.append(
            f"top-1: CARE {_mean(top_care):.3f}, SimCLR {_mean(top_simclr):.3f}; per-seed "
            f"difference {_mean(paired):+.3f}{spread}"
        )
    return "\n".join(f"- {line}" for line in lines)


def main(argv: list[str] | None = None) -> int:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data/render3d_small"))
    parser.add_argument("--out", type=Path, default=Path("runs/reference_care"))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--width", type=int, default=defaults.width, help="first conv's channels")
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--weight", type=float, default=defaults.equivariance_weight, help="λ")
    parser.add_argument("--chunk-size", type=int, default=defaults.chunk_size, help="n")
    parser.add_argument("--crop-scale", nargs=2, type=float, default=list(defaults.crop_scale))
    parser.add_argument("--projector", nargs=2, type=int, default=list(defaults.projector))
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--probes", nargs="+", default=list(PROBES))
    parser.add_argument(
        "--families", nargs="*", default=[], help="orthogonality families (default: all)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help=f"keep finished runs; evaluate OUT/<run>/{PRETRAINED} where only it exists",
    )
    args = parser.parse_args(argv)

    from sslequi.evaluation.results import compare
    from sslequi.study import group_runs, headline_table, load_average

    settings = Settings(
        steps=args.steps,
        batch_size=args.batch_size,
        width=args.width,
        lr=args.lr,
        equivariance_weight=args.weight,
        chunk_size=args.chunk_size,
        crop_scale=(args.crop_scale[0], args.crop_scale[1]),
        projector=(args.projector[0], args.projector[1]),
    )
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    before = load_average()
    config = render2d_config(args.root.resolve(), args.resolution)
    cpu = time.process_time()
    base = ImageSampler.load(config, seed=0)
    print(f"loaded {len(base.images)} train images in {time.process_time() - cpu:.1f} CPU s")
    records: list[RunRecord] = []
    for method in args.methods:
        for seed in args.seeds:
            sampler = ImageSampler(base.images, base.mean, base.std, seed)
            records.append(run_one(method, seed, args, settings, sampler, config))
            write_manifest(args.out, [(r.name, r.seed, r.run_dir) for r in records])
    compare([args.out.resolve() / r.run_dir for r in records], out=args.out / "comparison")
    print()
    print(headline_table(group_runs(args.out), columns=HEADLINE))
    print()
    print(checks(args.out))
    print(f"settings: {settings}")
    print(f"conditions: {args.threads} thread; {before} at start, {load_average()} at end")
    return 0


HEADLINE = (
    ("linear", "top1", "full", "top-1"),
    ("knn", "top1", "full", "kNN top-1"),
    ("orthogonality", "residual_all", "projector", "ẑ residual (all)"),
    ("orthogonality", "residual_all", "full", "y residual (all)"),
    ("orthogonality", "gram_mismatch_all", "projector", "ẑ Gram mismatch (all)"),
)

if __name__ == "__main__":
    sys.exit(main())
