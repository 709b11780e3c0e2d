"""An independent seq-JEPA reference on the built-in 3D benchmark, scored by the harness's own
probes (issue 12: "a minimal independent seq-JEPA on the same data and budget").

What it is. seq-JEPA (methods.md §9.1–9.2) written here from the specification on the plain
CNN of ``benchmarks/reference_sie.py`` (8 conv layers, 128-d), sharing no model or loss
code with the harness (nothing from ``sslequi.methods`` or ``sslequi.models``). The data is
shared on purpose: the harness's 3DIEBench reader loads the views; the relative actions
a_i = quat(R_iᵀR_{i+1}) (x, y, z, w) are computed here with scipy (reference_sie.py's
``relative_quaternion``). Scoring is the harness's: the trained CNN and aggregator are
wrapped in a small ``Method`` adapter and handed to ``sslequi.study.evaluate_in_memory`` (the
study's probes, plus ``agg_linear`` on z_AGG), so the rows compare with
``benchmarks/compare_3d.py``'s ``seqjepa`` / ``seqjepa_uncond`` rows.

Model (§9.1). Per object M + 1 distinct views (without replacement), M = 3 observed and one
target; z_i = f_θ(x_i) ∈ ℝ¹²⁸; e(a) = BN(affine=False)(W a), W: 4 → 128 without bias; tokens
[z_i ; e(a_i)] for i < M and [z_M ; 0]; a zero-initialised [AGG] token; 3 post-norm
transformer layers (4 heads, FFN 4·d, dropout 0.1, ReLU) and a final LayerNorm, no
positional encoding; predictor Lin(→1024, no bias)-BN-ReLU-Lin(→128) on [z_AGG ; e(a_M)];
target z̄ = f_ξ(x_{M+1}), ξ an EMA of the encoder only (train mode, BN buffers copied), τ by
the per-epoch cosine 0.996 → 1. Loss (§9.2): 1 − mean cos(ẑ, sg z̄). ``--unconditioned``:
the action slots and the predictor's action are zeros (the paper's ablation).

Optimiser (the study's ``seqjepa_3diebench_cpu``): AdamW lr 3e-3, weight decay 1e-3 on
weights only, 30 linear warmup steps then cosine to 0; 300 steps × 128 objects; 64 px; one
torch thread; seeds 0 1 2.

    python benchmarks/reference_seqjepa.py --seeds 0 1 2 --out runs/reference_seqjepa

Writes ``OUT/reference_seqjepa[_uncond]_s<seed>/results.json`` and ``reference.json``,
``OUT/study.json`` (``sslequi.study``'s manifest) and ``OUT/comparison.md``; prints
``sslequi.study.headline_table``.

RESULTS: see README.md, "CPU study" (the reference_seqjepa rows and their conditions).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("WANDB_SILENT", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from reference_sie import (  # noqa: E402
    PairSampler,
    ReferenceCNN,
    relative_quaternion,
    write_manifest,
)
from torch import Tensor, nn  # noqa: E402

from sslequi.methods.base import Method, MethodConfig  # noqa: E402
from sslequi.types import Batch, MethodSpec, StepOutput  # noqa: E402

PRETRAINED = "pretrained.pt"
# what a kept run (--resume) must share with the request
TRAINING_SETTINGS = ("steps", "batch_size", "observed", "width", "lr", "weight_decay", "warmup")
ACTION_DIM = 4  # relative quaternion
EMBED_DIM = 128


# ----------------------------------------------------------------------------- loss, EMA


def jepa_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """1 − mean_b cos(ẑ_b, sg z̄_b) (§9.2)."""
    return 1.0 - F.cosine_similarity(prediction, target.detach(), dim=1).mean()


def ema_momentum(epoch: int, epochs: int, base: float = 0.996) -> float:
    """τ(e) = 1 − (1 − base)(cos(π e / E) + 1)/2 (§9.1)."""
    return 1.0 - (1.0 - base) * (math.cos(math.pi * epoch / epochs) + 1.0) / 2.0


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """ξ ← τξ + (1 − τ)θ on parameters; buffers (BN statistics) copied."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.mul_(tau).add_(o.detach(), alpha=1.0 - tau)
    for t, o in zip(target.buffers(), online.buffers(), strict=True):
        t.copy_(o)


# ----------------------------------------------------------------------------- model


class SeqJEPAModel(nn.Module):
    """Encoder, action embedding, [AGG] transformer and predictor; EMA target encoder."""

    def __init__(
        self, width: int = 16, conditioned: bool = True, layers: int = 3, heads: int = 4
    ) -> None:
        super().__init__()
        self.encoder = ReferenceCNN(width)
        d = self.encoder.feature_dim
        self.d_model = d + EMBED_DIM
        self.conditioned = conditioned
        self.embed = nn.Sequential(
            nn.Linear(ACTION_DIM, EMBED_DIM, bias=False), nn.BatchNorm1d(EMBED_DIM, affine=False)
        )
        self.agg = nn.Parameter(torch.zeros(1, 1, self.d_model))
        block = nn.TransformerEncoderLayer(
            self.d_model, heads, 4 * self.d_model, dropout=0.1, batch_first=True
        )
        self.transformer = nn.TransformerEncoder(
            block, layers, norm=nn.LayerNorm(self.d_model), enable_nested_tensor=False
        )
        self.predictor = nn.Sequential(
            nn.Linear(self.d_model + EMBED_DIM, 1024, bias=False),
            nn.BatchNorm1d(1024),
            nn.ReLU(inplace=True),
            nn.Linear(1024, d),
        )
        self.target = copy.deepcopy(self.encoder).requires_grad_(False)

    def embed_actions(self, actions: Tensor) -> Tensor:
        """e(a) [B, k, 128] for actions [B, k, 4], one BatchNorm over all B·k rows."""
        b, k, _ = actions.shape
        return self.embed(actions.reshape(b * k, ACTION_DIM)).reshape(b, k, EMBED_DIM)

    def aggregate(self, z: Tensor, actions: Tensor | None) -> Tensor:
        """z_AGG from z [B, M, d] and the M − 1 actions between them [B, M − 1, 4]."""
        b, m, _ = z.shape
        slots = z.new_zeros(b, m, EMBED_DIM)
        if self.conditioned and m > 1 and actions is not None:
            # the last observed token's slot is zeroed after the embedding (§9.1)
            padded = torch.cat([actions, actions.new_zeros(b, 1, ACTION_DIM)], dim=1)
            slots = torch.cat([self.embed_actions(padded)[:, :-1], slots[:, -1:]], dim=1)
        tokens = torch.cat([self.agg.expand(b, 1, -1), torch.cat([z, slots], dim=2)], dim=1)
        return self.transformer(tokens)[:, 0]

    def loss(self, views: Tensor, actions: Tensor) -> Tensor:
        """views [B, M + 1, 3, H, W]; actions [B, M, 4] (a_i: view i → i + 1)."""
        b, n = views.shape[:2]
        m = n - 1
        z = self.encoder(views[:, :m].flatten(0, 1)).reshape(b, m, -1)
        with torch.no_grad():
            target = self.target(views[:, m])
        z_agg = self.aggregate(z, actions[:, : m - 1])
        if self.conditioned:
            next_action = self.embed(actions[:, m - 1])
        else:
            next_action = z_agg.new_zeros(b, EMBED_DIM)
        return jepa_loss(self.predictor(torch.cat([z_agg, next_action], dim=1)), target)


# ----------------------------------------------------------------------------- data


@dataclass
class SequenceSampler:
    """Objects drawn without replacement per epoch; M + 1 distinct views of each."""

    pairs: PairSampler  # reference_sie's in-memory views, latents, normalisation, generator

    def batch(self, batch_size: int, views: int) -> tuple[Tensor, Tensor]:
        """Normalised views [B, V, 3, H, W] and actions quat(R_iᵀR_{i+1}) [B, V − 1, 4]."""
        p = self.pairs
        chosen, angles = [], []
        for obj in p._next_objects(batch_size):
            available = p.images[obj].shape[0]
            if views > available:
                raise ValueError(f"{views} views per sequence > {available} views per object")
            order = torch.randperm(available, generator=p.generator)[:views].tolist()
            chosen.append(p.images[obj][order])
            angles.append(p.latents[obj][order, :3])
        images = (torch.stack(chosen).float() / 255.0 - p.mean.unsqueeze(0)) / p.std.unsqueeze(0)
        angles_all = np.stack(angles)  # [B, V, 3]
        quats = relative_quaternion(
            angles_all[:, :-1].reshape(-1, 3), angles_all[:, 1:].reshape(-1, 3)
        ).reshape(batch_size, views - 1, ACTION_DIM)
        return images, torch.from_numpy(quats).float()


# ----------------------------------------------------------------------------- harness adapter


class ReferenceSeqJEPAMethod(Method):
    """The trained reference as the harness's ``Method``: per-view encoder and z_AGG."""

    sequence_action = "rotation_quat"

    def __init__(self, model: SeqJEPAModel, name: str) -> None:
        super().__init__(MethodConfig(name=name), model.encoder, model.encoder.feature_dim)
        self.model = model

    def spec(self) -> MethodSpec:
        return MethodSpec()

    def forward(self, batch: Batch) -> StepOutput:
        raise NotImplementedError("the reference trains itself; this adapter only encodes")

    def encode(self, images: Tensor) -> Tensor:
        return self.model.encoder(images)

    def aggregate(self, z: Tensor, actions: Tensor | None) -> Tensor:
        return self.model.aggregate(z, actions)


# ----------------------------------------------------------------------------- runs


def schedule(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warmup over ``warmup`` steps, then cosine to 0."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def pretrain(
    sampler: SequenceSampler, args: argparse.Namespace, seed: int, conditioned: bool
) -> tuple[SeqJEPAModel, list[float]]:
    """Train one model; returns it and the loss every ``log_every`` steps."""
    torch.manual_seed(seed)
    model = SeqJEPAModel(args.width, conditioned)
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if p.ndim > 1 and n != "agg"]
    rest = [p for n, p in trained if p.ndim <= 1 or n == "agg"]  # biases, norms, [AGG]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": rest, "weight_decay": 0}],
        lr=args.lr,
    )
    objects = len(sampler.pairs.images)
    steps_per_epoch = max(1, objects // args.batch_size)
    epochs = -(-args.steps // steps_per_epoch)
    model.train()
    losses = []
    for step in range(args.steps):
        for group in optimiser.param_groups:
            group["lr"] = schedule(step, args.steps, args.lr, args.warmup)
        views, actions = sampler.batch(args.batch_size, args.observed + 1)
        loss = model.loss(views, actions)
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"loss {value} at step {step}")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        ema_update(model.target, model.encoder, ema_momentum(step // steps_per_epoch, epochs))
        if step % args.log_every == 0 or step == args.steps - 1:
            losses.append(value)
            print(f"  step {step:4d}: loss {value:.4f}", flush=True)
    return model, losses


@dataclass
class RunRecord:
    """One (variant, seed): CPU seconds per stage, the logged losses, the settings."""

    name: str
    seed: int
    run_dir: str
    cpu_s: dict[str, float]
    wall_s: dict[str, float]
    losses: list[float]
    settings: dict[str, int | float | str]


def run_one(name: str, seed: int, args: argparse.Namespace, sampler: SequenceSampler) -> RunRecord:
    from sslequi.study import STUDY_PROBES, evaluate_in_memory

    run_dir = args.out.resolve() / f"{name}_s{seed}"
    done = run_dir / "reference.json"
    settings = {key: getattr(args, key) for key in TRAINING_SETTINGS}
    if args.resume and done.is_file():
        kept = RunRecord(**json.loads(done.read_text()))
        if kept.settings == settings:
            print(f"=== {run_dir.name}: done (reference.json), kept ===", flush=True)
            return kept
        print(f"=== {run_dir.name}: other settings in reference.json, retrained ===", flush=True)
    print(f"=== {run_dir.name}: pretraining ({args.steps} steps × {args.batch_size}) ===")
    cpu, wall = time.process_time(), time.perf_counter()
    model, losses = pretrain(sampler, args, seed, conditioned=not name.endswith("_uncond"))
    pretrain_cpu, pretrain_wall = time.process_time() - cpu, time.perf_counter() - wall
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), run_dir / PRETRAINED)
    print(f"=== {run_dir.name}: evaluating ===", flush=True)
    cpu = time.process_time()
    probes = tuple(args.probes) if args.probes else (*STUDY_PROBES, "agg_linear")
    evaluate_in_memory(
        ReferenceSeqJEPAMethod(model, name), args.root.resolve(), run_dir, seed, probes
    )
    record = RunRecord(
        name=name,
        seed=seed,
        run_dir=run_dir.name,
        cpu_s={"pretrain": pretrain_cpu, "evaluate": time.process_time() - cpu},
        wall_s={"pretrain": pretrain_wall},
        losses=losses,
        settings=settings,
    )
    done.write_text(json.dumps(asdict(record), indent=2))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data/render3d_small"))
    parser.add_argument("--out", type=Path, default=Path("runs/reference_seqjepa"))
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["conditioned", "unconditioned"],
        choices=["conditioned", "unconditioned"],
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--observed", type=int, default=3, help="M observed views")
    parser.add_argument("--width", type=int, default=16, help="first conv's channels")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=30, help="linear warmup steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument(
        "--resume", action="store_true", help="keep finished runs with the same settings"
    )
    parser.add_argument("--probes", nargs="+", default=None, help="default: study + agg_linear")
    args = parser.parse_args(argv)

    from sslequi.evaluation.results import compare
    from sslequi.study import group_runs, headline_table, load_average

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    base = PairSampler.load(args.root, seed=0)
    records: list[RunRecord] = []
    for variant in args.variants:
        name = "reference_seqjepa" + ("_uncond" if variant == "unconditioned" else "")
        for seed in args.seeds:
            pairs = PairSampler(base.images, base.latents, base.mean, base.std, seed)
            records.append(run_one(name, seed, args, SequenceSampler(pairs)))
            write_manifest(args.out, [(r.name, r.seed, r.run_dir) for r in records])
    compare(
        [args.out.resolve() / r.run_dir for r in records], out=args.out / "comparison", echo=False
    )
    print()
    print(headline_table(group_runs(args.out)))
    for r in records:
        cpu = r.cpu_s
        print(f"{r.run_dir}: CPU s pretrain {cpu['pretrain']:.0f}, evaluate {cpu['evaluate']:.0f}")
    print(load_average())
    return 0


if __name__ == "__main__":
    sys.exit(main())
