"""An independent SIE / VICReg reference on the built-in 3D benchmark, scored by the harness's
own probes (issue 10: "an in-repo independent reference").

What it is. A plain CNN, SIE (methods.md §2) and VICReg (§1.1) written here from the
equations, sharing no model or loss code with the harness (nothing from ``sslequi.methods``
or ``sslequi.models``). The data is shared on purpose: the harness's 3DIEBench reader loads
the views, and the relative rotation g = quat(R₁ᵀR₂) (x, y, z, w) is computed here with
scipy on the official composition path (``from_euler('xyz', a₁).inv() * from_euler('xyz',
a₂)``, then ``as_quat()``, datasets.md §1.5). Scoring is the harness's too: the trained
CNN is wrapped in a tiny ``Method`` adapter and handed to ``sslequi.study.evaluate_in_memory``
(the study's probe protocol, every declared part), so the rows are comparable with
``benchmarks/compare_3d.py``'s.

Model. 8 conv layers 3×3 (no bias) + BatchNorm + ReLU, channels 16-16-32-32-64-64-128-128,
strides 1-2-1-2-1-2-1-1 (stride-1 first conv; 64 px → 8×8), global average pool → y ∈ ℝ¹²⁸,
channels-last memory format (≈ 1.6× faster on one CPU thread). Projectors as in SIE §2.1
(Linear → BN → ReLU, last Linear without bias): SIE one per half, 64 → 256-256-256 (the
total 512-512-512 split by share), VICReg 128 → 512-512-512. SIE's predictor is
ẑ′ = W(g) z_equi, W(g) = Σ_k g_k A_k (A_k ∈ ℝ²⁵⁶ˣ²⁵⁶, no bias), with the norm-preserving init
A_k ~ N(0, 1/d) so that ‖W(g)z‖ ≈ ‖g‖‖z‖ at init (issue 10, cause 1).

Losses (B = batch, v = variance hinge, c = off-diagonal covariance, both per §1.1):
  SIE    L = 10 MSE(z_inv, z′_inv) + 0.45·10 MSE(W(g)z_equi, z′_equi)
             + 10 (½ v(Z) + ½ v(Z′) + ½ v(Ẑ′)) + 1 (c(Z) + c(Z′)),  Z = [z_inv ‖ z_equi]
  VICReg L = 10 MSE(z, z′) + 10 (½ v(Z) + ½ v(Z′)) + 1 (c(Z) + c(Z′)),
with the covariance over the actual batch (B − 1). Adam lr 1e-3, weight decay 1e-6 (SIE
§2.4), batch 128 pairs (two distinct random views of an object, objects drawn without
replacement within an epoch), 300 steps, 64 px, images normalised with the dataset's
mean/std, one torch thread, seeds 0 1 2.

    python benchmarks/reference_sie.py --seeds 0 1 2 --steps 300 --batch-size 128 \\
        --root data/render3d_small --out runs/reference_sie --methods sie vicreg

Writes ``OUT/reference_<method>_s<seed>/results.json`` (the probes' rows) and
``reference.json`` (CPU seconds per stage, loss terms, the hypernetwork's relative weight
change ‖A − A₀‖_F / ‖A₀‖_F), ``OUT/study.json`` (``sslequi.study``'s manifest format) and
``OUT/comparison.md``; prints ``sslequi.study.headline_table`` (mean ± std over seeds).

Measured (2026-05, ``small`` preset seed 0, seeds 0 1 2, 2 cores shared with other
benchmarks, load ≈ 3–5; val split, the study's size-chosen probe protocol at the time):
see RESULTS below, filled in from the run that produced them.

RESULTS: (not yet measured)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep, not spin
os.environ.setdefault("WANDB_SILENT", "true")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from sslequi.data.threedie import ThreeDIEBench, ThreeDIEConfig  # noqa: E402
from sslequi.methods.base import Method, MethodConfig  # noqa: E402
from sslequi.study import add_probe_budget_arguments  # noqa: E402
from sslequi.types import Batch, MethodSpec, Parts, StepOutput  # noqa: E402

METHODS = ("sie", "vicreg")
RESOLUTION = 64  # what ``evaluate_in_memory`` reads at
CHANNELS = (16, 16, 32, 32, 64, 64, 128, 128)  # × width / 16
STRIDES = (1, 2, 1, 2, 1, 2, 1, 1)
PROJECTOR = (512, 512, 512)  # total widths; SIE splits them between its halves by share
PRETRAINED = "pretrained.pt"  # the trained backbone and its training record, per run


@dataclass(frozen=True)
class Coefficients:
    """Loss weights: SIE 10 / 0.45 / 10 / 1 (sim / equi factor / std / cov), VICReg 10 / 10 / 1."""

    sim: float = 10.0
    equi_factor: float = 0.45  # equivariance weight = equi_factor · sim = 4.5
    std: float = 10.0
    cov: float = 1.0


# ----------------------------------------------------------------------------- losses


def variance_hinge(z: Tensor, eps: float = 1e-4) -> Tensor:
    """v(Z) = (1/D) Σ_d ReLU(1 − √(Var(Z_d) + ε)), unbiased variance over the batch."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(1.0 - std).mean()


def covariance_penalty(z: Tensor) -> Tensor:
    """c(Z) = (1/D) Σ_{i≠j} C_ij², C = Z_cᵀ Z_c / (B − 1) with Z_c the centred batch."""
    n, d = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (n - 1)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return off_diagonal.pow(2).sum() / d


def sie_terms(
    z_inv: Tensor, z_equi: Tensor, z2_inv: Tensor, z2_equi: Tensor, pred: Tensor
) -> dict[str, Tensor]:
    """SIE's unweighted terms (§2.2); view 1 = ``z_*``, view 2 = ``z2_*``, pred = W(g) z_equi."""
    z, z2 = torch.cat([z_inv, z_equi], dim=1), torch.cat([z2_inv, z2_equi], dim=1)
    return {
        "inv": F.mse_loss(z_inv, z2_inv),
        "equi": F.mse_loss(pred, z2_equi),
        "var": 0.5 * variance_hinge(z) + 0.5 * variance_hinge(z2),
        "pvar": 0.5 * variance_hinge(pred),
        "cov": covariance_penalty(z) + covariance_penalty(z2),
    }


def sie_loss(terms: dict[str, Tensor], c: Coefficients) -> Tensor:
    """λ_sim L_inv + λ_equi·λ_sim L_equi + λ_std (L_var + L_pvar) + λ_cov L_cov."""
    return (
        c.sim * terms["inv"]
        + c.equi_factor * c.sim * terms["equi"]
        + c.std * (terms["var"] + terms["pvar"])
        + c.cov * terms["cov"]
    )


def vicreg_terms(z: Tensor, z2: Tensor) -> dict[str, Tensor]:
    """VICReg's unweighted terms (§1.1)."""
    return {
        "inv": F.mse_loss(z, z2),
        "var": 0.5 * variance_hinge(z) + 0.5 * variance_hinge(z2),
        "cov": covariance_penalty(z) + covariance_penalty(z2),
    }


def vicreg_loss(terms: dict[str, Tensor], c: Coefficients) -> Tensor:
    """λ_sim MSE + λ_std (½ v(Z) + ½ v(Z′)) + λ_cov (c(Z) + c(Z′))."""
    return c.sim * terms["inv"] + c.std * terms["var"] + c.cov * terms["cov"]


# ----------------------------------------------------------------------------- models


class ReferenceCNN(nn.Module):
    """8 × (conv 3×3 → BN → ReLU), global average pool; channels scale with ``width``/16."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out, stride in zip(CHANNELS, STRIDES, strict=True):
            out = max(1, out * width // 16)
            layers += [
                nn.Conv2d(channels, out, 3, stride, 1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.feature_dim = channels
        self.to(memory_format=torch.channels_last)

    def forward(self, images: Tensor) -> Tensor:
        x = self.features(images.contiguous(memory_format=torch.channels_last))
        return x.mean(dim=(2, 3))


def projector(in_dim: int, widths: Sequence[int]) -> nn.Sequential:
    """[Linear → BN1d → ReLU] × (L − 1) → Linear without bias (SIE §2.1)."""
    layers: list[nn.Module] = []
    dims = [in_dim, *widths]
    for a, b in zip(dims[:-2], dims[1:-1], strict=True):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
    layers.append(nn.Linear(dims[-2], dims[-1], bias=False))
    return nn.Sequential(*layers)


class HyperPredictor(nn.Module):
    """ẑ′ = W(g) z with W(g) = Σ_k g_k A_k; A_k ~ N(0, 1/d) so ‖W(g) z‖ ≈ ‖g‖ ‖z‖ at init."""

    def __init__(self, dim: int, action_dim: int = 4) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.randn(action_dim, dim, dim) / math.sqrt(dim))

    def forward(self, z: Tensor, g: Tensor) -> Tensor:
        per_k = torch.matmul(z, self.A.transpose(1, 2))  # [k, B, d]: A_k z for each k
        return torch.einsum("bk,kbd->bd", g, per_k)


class SIEModel(nn.Module):
    """Backbone, one projector per half of y (first half invariant), hypernetwork predictor."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.backbone = ReferenceCNN(width)
        d = self.backbone.feature_dim
        self.inv_dim = d // 2
        half = tuple(w // 2 for w in PROJECTOR)
        self.proj_inv = projector(self.inv_dim, half)
        self.proj_equi = projector(d - self.inv_dim, half)
        self.predictor = HyperPredictor(half[-1])

    def terms(self, x1: Tensor, x2: Tensor, g: Tensor) -> dict[str, Tensor]:
        y1, y2 = self.backbone(x1), self.backbone(x2)
        k = self.inv_dim
        z_inv, z_equi = self.proj_inv(y1[:, :k]), self.proj_equi(y1[:, k:])
        z2_inv, z2_equi = self.proj_inv(y2[:, :k]), self.proj_equi(y2[:, k:])
        return sie_terms(z_inv, z_equi, z2_inv, z2_equi, self.predictor(z_equi, g))


class VICRegModel(nn.Module):
    """Backbone and one projector on all of y."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.backbone = ReferenceCNN(width)
        self.proj = projector(self.backbone.feature_dim, PROJECTOR)

    def terms(self, x1: Tensor, x2: Tensor, g: Tensor) -> dict[str, Tensor]:
        return vicreg_terms(self.proj(self.backbone(x1)), self.proj(self.backbone(x2)))


# ----------------------------------------------------------------------------- harness adapter


class ReferenceMethod(Method):
    """The trained CNN as the harness's ``Method``, only so its probes can read it."""

    def __init__(self, backbone: ReferenceCNN, name: str, split: bool) -> None:
        super().__init__(MethodConfig(name=name), backbone, backbone.feature_dim)
        self.split = split

    def spec(self) -> MethodSpec:
        return MethodSpec()

    def forward(self, batch: Batch) -> StepOutput:
        raise NotImplementedError("the reference trains itself; this adapter only encodes")

    def encode(self, images: Tensor) -> Tensor:
        return self.backbone(images)

    def parts(self) -> Parts:
        if not self.split:
            return Parts()
        half = self.feature_dim // 2
        return Parts(invariant=slice(0, half), equivariant=slice(half, self.feature_dim))


# ----------------------------------------------------------------------------- data


def relative_quaternion(angles_1: np.ndarray, angles_2: np.ndarray) -> np.ndarray:
    """quat(R₁ᵀR₂), (x, y, z, w), from Euler 'xyz' angles [B, 3] (the official scipy path)."""
    r1 = Rotation.from_euler("xyz", angles_1)
    r2 = Rotation.from_euler("xyz", angles_2)
    return (r1.inv() * r2).as_quat()


@dataclass
class PairSampler:
    """All train views in memory (uint8); batches of objects, two distinct views each."""

    images: list[Tensor]  # per object [V, 3, H, W] uint8
    latents: list[np.ndarray]  # per object [V, L] float64
    mean: Tensor
    std: Tensor
    seed: int
    _order: list[int] = field(default_factory=list)

    @classmethod
    def load(cls, root: Path, seed: int) -> PairSampler:
        dataset = ThreeDIEBench(ThreeDIEConfig(root=str(root), resolution=RESOLUTION), "train", 2)
        images, latents = [], []
        for index in range(len(dataset)):
            sample = dataset.views_of(index)
            assert sample.latents is not None
            images.append(sample.images)
            latents.append(sample.latents.double().numpy())
        mean = torch.tensor(dataset.info.mean).view(1, 3, 1, 1)
        std = torch.tensor(dataset.info.std).view(1, 3, 1, 1)
        return cls(images, latents, mean, std, seed)

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)

    def _next_objects(self, batch_size: int) -> list[int]:
        if batch_size > len(self.images):
            raise ValueError(f"batch {batch_size} > {len(self.images)} train objects")
        if len(self._order) < batch_size:  # a new epoch; the remainder is dropped
            self._order = torch.randperm(len(self.images), generator=self.generator).tolist()
        chosen, self._order = self._order[:batch_size], self._order[batch_size:]
        return chosen

    def batch(self, batch_size: int) -> tuple[Tensor, Tensor, Tensor]:
        """Normalised views x₁, x₂ [B, 3, H, W] and g = quat(R₁ᵀR₂) [B, 4]."""
        first, second, angles_1, angles_2 = [], [], [], []
        for obj in self._next_objects(batch_size):
            n = self.images[obj].shape[0]
            a = int(torch.randint(n, (1,), generator=self.generator))
            b = (a + int(torch.randint(1, n, (1,), generator=self.generator))) % n
            first.append(self.images[obj][a])
            second.append(self.images[obj][b])
            angles_1.append(self.latents[obj][a, :3])
            angles_2.append(self.latents[obj][b, :3])
        g = relative_quaternion(np.stack(angles_1), np.stack(angles_2))
        return self._normalise(first), self._normalise(second), torch.from_numpy(g).float()

    def _normalise(self, images: list[Tensor]) -> Tensor:
        return (torch.stack(images).float() / 255.0 - self.mean) / self.std


# ----------------------------------------------------------------------------- runs


@dataclass
class RunRecord:
    """One (method, seed): CPU seconds per stage, losses, the hypernetwork's weight change."""

    name: str
    seed: int
    run_dir: str
    cpu_s: dict[str, float]
    wall_s: dict[str, float]
    first_terms: dict[str, float]
    last_terms: dict[str, float]
    hypernet_rel_change: float | None = None


def pretrain(
    method: str,
    sampler: PairSampler,
    steps: int,
    batch_size: int,
    seed: int,
    width: int = 16,
    lr: float = 1e-3,
    log_every: int = 50,
) -> tuple[SIEModel | VICRegModel, dict[str, float], dict[str, float], float | None]:
    """Train one model; returns it, the first and last steps' terms, and ‖A − A₀‖/‖A₀‖."""
    torch.manual_seed(seed)
    model: SIEModel | VICRegModel = SIEModel(width) if method == "sie" else VICRegModel(width)
    initial = model.predictor.A.detach().clone() if isinstance(model, SIEModel) else None
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-6)
    coefficients = Coefficients()
    loss_fn = sie_loss if method == "sie" else vicreg_loss
    model.train()
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for step in range(steps):
        x1, x2, g = sampler.batch(batch_size)
        terms = model.terms(x1, x2, g)
        loss = loss_fn(terms, coefficients)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        last = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}
        if not math.isfinite(last["loss"]):
            raise FloatingPointError(f"{method} seed {seed}: loss {last['loss']} at step {step}")
        if step == 0:
            first = dict(last)
        if log_every and (step % log_every == 0 or step == steps - 1):
            shown = " ".join(f"{k} {v:.4f}" for k, v in last.items())
            print(f"  [{method} s{seed}] step {step:4d}: {shown}", flush=True)
    change = None
    if isinstance(model, SIEModel) and initial is not None:
        change = float((model.predictor.A.detach() - initial).norm() / initial.norm())
    return model, first, last, change


def run_one(
    method: str, seed: int, args: argparse.Namespace, sampler: PairSampler, load_cpu: float
) -> RunRecord:
    from sslequi.study import STUDY_PROBES, Budget, evaluate_in_memory, probe_overrides

    name = f"reference_{method}"
    run_dir = args.out.resolve() / f"{name}_s{seed}"
    saved = run_dir / PRETRAINED
    settings = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "width": args.width,
        "lr": args.lr,
    }
    state = torch.load(saved) if args.resume and saved.is_file() else None
    done = run_dir / "reference.json"
    if state is not None and state["settings"] == settings and done.is_file():
        print(f"=== {run_dir.name}: done (reference.json), kept ===", flush=True)
        return RunRecord(**json.loads(done.read_text()))
    if state is not None and state["settings"] == settings:
        print(f"=== {run_dir.name}: reusing {PRETRAINED} ===", flush=True)
        backbone = ReferenceCNN(args.width)
        backbone.load_state_dict(state["backbone"])
        first, last, change = state["first"], state["last"], state["change"]
        pretrain_cpu, pretrain_wall = state["cpu_s"], state["wall_s"]
    else:
        print(f"=== {run_dir.name}: pretraining ({args.steps} steps × {args.batch_size}) ===")
        cpu, wall = time.process_time(), time.perf_counter()
        model, first, last, change = pretrain(
            method, sampler, args.steps, args.batch_size, seed, args.width, args.lr, args.log_every
        )
        pretrain_cpu, pretrain_wall = time.process_time() - cpu, time.perf_counter() - wall
        backbone = model.backbone
        run_dir.mkdir(parents=True, exist_ok=True)
        state = {"backbone": backbone.state_dict(), "settings": settings, "first": first}
        state.update(last=last, change=change, cpu_s=pretrain_cpu, wall_s=pretrain_wall)
        torch.save(state, saved)  # kept, so ``--resume`` need not retrain it
    print(f"=== {run_dir.name}: evaluating ===", flush=True)
    adapter = ReferenceMethod(backbone, name, split=method == "sie")
    cpu, wall = time.process_time(), time.perf_counter()
    probes = STUDY_PROBES if args.probes is None else tuple(args.probes)
    budget = Budget(args.steps, args.batch_size, seed, args.probe_epochs, args.probe_min_steps)
    overrides = probe_overrides(budget, probes)  # {} unless --probe-epochs / --probe-min-steps
    evaluate_in_memory(adapter, args.root.resolve(), run_dir, seed, probes, **overrides)
    eval_cpu, eval_wall = time.process_time() - cpu, time.perf_counter() - wall
    record = RunRecord(
        name=name,
        seed=seed,
        run_dir=run_dir.name,
        cpu_s={"load": load_cpu, "pretrain": pretrain_cpu, "evaluate": eval_cpu},
        wall_s={"pretrain": pretrain_wall, "evaluate": eval_wall},
        first_terms=first,
        last_terms=last,
        hypernet_rel_change=change,
    )
    (run_dir / "reference.json").write_text(json.dumps(record.__dict__, indent=2))
    shown = f", hypernetwork ‖A − A₀‖/‖A₀‖ {change:.3f}" if change is not None else ""
    print(
        f"    CPU s: pretrain {pretrain_cpu:.0f}, evaluate {eval_cpu:.0f}{shown}",
        flush=True,
    )
    return record


def write_manifest(out: Path, runs: Sequence[tuple[str, int, str]]) -> None:
    """``OUT/study.json`` in ``sslequi.study._write_manifest``'s format, from (name, seed,
    run directory) per run (also used by the other ``reference_*.py`` scripts)."""
    manifest = [
        {"name": name, "recipe": "-", "seed": seed, "run_dir": run_dir, "single_seed": False}
        for name, seed, run_dir in runs
    ]
    (out / "study.json").write_text(json.dumps(manifest, indent=2))


def _mean_std(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def summary(records: Sequence[RunRecord]) -> str:
    """CPU seconds per stage (mean ± std over seeds) and the hypernetwork weight change."""
    lines = []
    for name in dict.fromkeys(r.name for r in records):
        group = [r for r in records if r.name == name]
        stages = ", ".join(
            f"{stage} {_mean_std([r.cpu_s[stage] for r in group])}"
            for stage in ("pretrain", "evaluate")
        )
        line = f"{name}: CPU s {stages}"
        changes = [r.hypernet_rel_change for r in group if r.hypernet_rel_change is not None]
        if changes:
            line += f"; hypernetwork ‖A − A₀‖/‖A₀‖ {_mean_std(changes)}"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data/render3d_small"))
    parser.add_argument("--out", type=Path, default=Path("runs/reference_sie"))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=int, default=16, help="first conv's channels")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument(
        "--resume",
        action="store_true",
        help=f"keep finished runs; evaluate OUT/<run>/{PRETRAINED} where only it exists "
        "(same steps, batch, width, lr)",
    )
    parser.add_argument(
        "--probes", nargs="+", default=None, help="default: the study's (sslequi.study)"
    )
    add_probe_budget_arguments(parser)
    args = parser.parse_args(argv)

    from sslequi.evaluation.results import compare
    from sslequi.study import group_runs, headline_table, load_average

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    cpu = time.process_time()
    base = PairSampler.load(args.root, seed=0)
    load_cpu = time.process_time() - cpu
    print(f"loaded {len(base.images)} train objects in {load_cpu:.1f} CPU s", flush=True)
    records: list[RunRecord] = []
    for method in args.methods:
        for seed in args.seeds:
            sampler = PairSampler(base.images, base.latents, base.mean, base.std, seed)
            records.append(run_one(method, seed, args, sampler, load_cpu))
            write_manifest(args.out, [(r.name, r.seed, r.run_dir) for r in records])
    compare(
        [args.out.resolve() / r.run_dir for r in records],
        out=args.out / "comparison",
        echo=False,
    )
    print()
    print(headline_table(group_runs(args.out)))
    print()
    print(summary(records))
    print(f"data load: {load_cpu:.1f} CPU s (once); {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
