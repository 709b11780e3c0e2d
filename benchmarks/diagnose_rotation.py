"""Diagnose why the CPU 3D comparison's relative-rotation probe sits at its floor (issue 6).

Subcommands, cheapest first, each printing figures measured in the same run:

- ``probe``: the evaluation suite's rotation probe (``fit_probe`` + ``action_targets`` +
  ``regression_scores``, exactly what ``evaluate_run`` uses) on features whose answer is
  known (the absolute quaternion / Euler angles of each view), on raw downsampled pixels,
  on a random-init backbone and on the trained runs' cached features; each under the
  compare_3d probe settings and under settings with more optimizer steps.
- ``actions``: the ``rotation_quat`` action a method trains on (``make_batch_builder``)
  against the probe target for the same ordered view pair, and against scipy.
- ``supervised``: the same backbone trained to regress quat(R1ᵀR2) from the pair of
  features (upper bound for the renders at this budget), then probed.
- ``sie``: short SIE / VICReg variants (recipe + Hydra overrides) trained in an in-memory
  loop on the method's own ``forward``; per-dim std / effective rank of y and z, probe.

Run: ``OMP_NUM_THREADS=1 python benchmarks/diagnose_rotation.py probe [--runs runs/compare_3d]``.
A benchmark, not a test; every subcommand takes ≤ a few minutes on one core.

Findings on the small preset (one seed, val R² per component, 10 fixed pairs per object;
logs in runs/diagnose/): the probe recovers quat(R1ᵀR2) from the absolute quaternions
(R² 0.998); the training action equals the probe target and scipy (max diff 3e-8);
pixels, random-init and every compare_3d feature set sit at −0.04…+0.03; the backbone
trained *supervised* on the target peaks at +0.02 (step 200) then overfits the 384 train
objects (train 0.85 / val −0.18 at 1500 steps). SIE with a 64-64-64 projector: +0.03…0.05
(512-512-512: ≈ 0.01); at width 1/4 SIE and VICReg both reach ≈ 0.05–0.06.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_ROOT = Path("data/render3d_small")


@dataclass
class SplitFeatures:
    """Per-view inputs [N, V, d] and latents [N, V, L] of one split."""

    features: Tensor
    latents: Tensor


# ----------------------------------------------------------------------------- data


def load_datasets(root: Path, resolution: int = 64) -> dict[str, object]:
    from sslequi.build import build_dataset
    from sslequi.data.threedie import ThreeDIEConfig

    cfg = ThreeDIEConfig(root=str(root.resolve()), resolution=resolution)
    return {split: build_dataset(cfg, split, 2) for split in ("train", "val")}


def all_images(dataset: object) -> tuple[Tensor, Tensor, Tensor]:
    """(uint8 images [N, V, C, H, W], latents [N, V, L], labels [N])."""
    from sslequi.evaluation.features import iterate_objects

    images, latents, labels = [], [], []
    for im, lat, lab in iterate_objects(dataset, "all", batch_size=64):  # type: ignore[arg-type]
        images.append(im)
        latents.append(lat)
        labels.append(lab)
    return torch.cat(images), torch.cat(latents), torch.cat(labels)


def encode_all(method: nn.Module, images: Tensor, mean: tuple, std: tuple) -> Tensor:
    from sslequi.evaluation.features import normalise

    method.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), 32):
            chunk = images[start : start + 32]
            b, v = chunk.shape[:2]
            flat = normalise(chunk.flatten(0, 1), mean, std)
            out.append(method.encode(flat).reshape(b, v, -1))
    return torch.cat(out)


# ----------------------------------------------------------------------------- probe


def probe_settings() -> dict[str, object]:
    from sslequi.evaluation.protocol import HeadTraining

    return {
        # what compare_3d passes: mlp 1024-1024, adam 1e-3, batch 256, ≤100 ep, early stop
        "compare3d": HeadTraining(early_stopping=True, epochs=100),
        # same head, ~4× more optimizer steps, last epoch (no noisy 38-pair holdout)
        "mlp_b64_150ep": HeadTraining(epochs=150, batch_size=64),
        "linear_b32_300ep": HeadTraining(head="linear", epochs=300, batch_size=32),
    }


def rotation_probe(
    train: SplitFeatures, val: SplitFeatures, training: object, seed: int = 0, draws: int = 1
) -> dict[str, float]:
    """The evaluation suite's rotation probe on arbitrary per-view features."""
    from sslequi.actions import ActionOptions
    from sslequi.evaluation.probes import CachedSource, SplitData, action_targets, fit_probe
    from sslequi.evaluation.runner import regression_scores

    cpu = torch.device("cpu")

    def split(name: str, data: SplitFeatures) -> SplitData:
        mu = train.features.flatten(0, 1).mean(0)
        sd = train.features.flatten(0, 1).std(0).clamp_min(1e-6)
        feats = (data.features.float() - mu) / sd  # per-dim standardised
        targets = action_targets(data.latents.float(), "rotation_quat", ActionOptions())
        n, v = feats.shape[:2]
        return SplitData(name, CachedSource(feats, cpu), targets, n, v)

    outcome = fit_probe(
        split("train", train),
        [split("val", val)],
        "regression",
        4,
        2,
        training,  # type: ignore[arg-type]
        seed,
        cpu,
        eval_draws_per_object=draws,
        progress=False,
    )
    out: dict[str, float] = {"epochs": float(outcome.epochs_run)}
    for name in ("train", "val"):
        scores = regression_scores(
            outcome.targets[name], outcome.predictions[name], quaternion=True
        )
        out[f"{name}_r2g"] = scores["r2_global"][0]
        out[f"{name}_r2pc"] = scores["r2_per_component"][0]
        if name == "val":
            out["floor_g"] = scores["r2_global"][1] or 0.0
            out["val_sie"] = scores["sign_invariant_error"][0]
            out["floor_sie"] = scores["sign_invariant_error"][1] or 0.0
    return out


def print_probe(label: str, train: SplitFeatures, val: SplitFeatures, draws: int) -> None:
    for name, training in probe_settings().items():
        start = time.perf_counter()
        s = rotation_probe(train, val, training, draws=draws)
        print(
            f"{label:<24} {name:<17} ep {int(s['epochs']):>3}  train R²pc {s['train_r2pc']:+.3f}  "
            f"val R²pc {s['val_r2pc']:+.3f}  val R²g {s['val_r2g']:+.3f} (floor {s['floor_g']:.3f})"
            f"  sign-inv err {s['val_sie']:.3f} (floor {s['floor_sie']:.3f})"
            f"  [{time.perf_counter() - start:.0f}s]",
            flush=True,
        )


def absolute_quaternions(latents: Tensor) -> Tensor:
    from sslequi.actions.rotation import euler_xyz_to_quat

    return euler_xyz_to_quat(latents[..., :3].double()).float()


def cached_run_features(run_dir: Path, split: str) -> Tensor | None:
    files = sorted((run_dir / "eval_features").glob(f"{split}-all-*.pt"))
    if not files:
        return None
    return torch.load(files[-1], map_location="cpu", weights_only=True)["features"].float()


def random_init_method(
    config_name: str, width: float = 0.125, extra: tuple[str, ...] = ()
) -> nn.Module:
    from hydra import compose, initialize_config_dir

    from sslequi.build import build_method
    from sslequi.config import register_configs, resolve_config

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(
            "pretrain",
            overrides=[
                f"experiment={config_name}",
                f"backbone.width_multiplier={width}",
                *extra,
            ],
        )
    torch.manual_seed(0)
    return build_method(resolve_config(cfg))


def cmd_probe(args: argparse.Namespace) -> None:
    data = load_datasets(args.root)
    imgs, lats, info = {}, {}, None
    for split, dataset in data.items():
        imgs[split], lats[split], _ = all_images(dataset)
        info = dataset.info  # type: ignore[attr-defined]
    n_tr, n_val = len(imgs["train"]), len(imgs["val"])
    print(f"objects: train {n_tr}, val {n_val}, views {imgs['train'].shape[1]}; draws {args.draws}")

    def both(fn: object) -> tuple[SplitFeatures, SplitFeatures]:
        return tuple(SplitFeatures(fn(s), lats[s]) for s in ("train", "val"))  # type: ignore[return-value,operator]

    if "oracle" in args.only:
        print_probe(
            "abs quaternion (4-d)", *both(lambda s: absolute_quaternions(lats[s])), args.draws
        )
        print_probe("euler angles (3-d)", *both(lambda s: lats[s][..., :3].float()), args.draws)
    if "pixels" in args.only:

        def pixels(s: str) -> Tensor:
            x = imgs[s].float().flatten(0, 1) / 255
            x = nn.functional.adaptive_avg_pool2d(x, 16)
            return x.reshape(*imgs[s].shape[:2], -1)

        print_probe("pixels 16x16 (768-d)", *both(pixels), args.draws)
    if "random" in args.only:
        method = random_init_method("sie_3diebench_cpu")
        feats = {s: encode_all(method, imgs[s], info.mean, info.std) for s in imgs}  # type: ignore[union-attr]
        print_probe("random-init r18/8", *both(lambda s: feats[s]), args.draws)
    if "runs" in args.only:
        for run_dir in sorted(p for p in args.runs.glob("*") if p.is_dir()):
            tr, va = cached_run_features(run_dir, "train"), cached_run_features(run_dir, "val")
            if tr is None or va is None:
                continue
            feats = {"train": tr, "val": va}
            print_probe(f"trained {run_dir.name}", *both(lambda s, f=feats: f[s]), args.draws)


# ----------------------------------------------------------------------------- actions


def cmd_actions(args: argparse.Namespace) -> None:
    from scipy.spatial.transform import Rotation

    from sslequi.actions import ActionOptions
    from sslequi.augment.builder import make_batch_builder
    from sslequi.evaluation.probes import action_targets
    from sslequi.types import RawBatch, collate_samples

    data = load_datasets(args.root)
    train = data["train"]
    torch.manual_seed(0)
    samples = [train[i] for i in range(64)]  # type: ignore[index]
    raw: RawBatch = collate_samples(samples)
    spec = _sie_spec()
    builder = make_batch_builder(spec, train.info, None)  # type: ignore[attr-defined]
    batch = builder(raw)
    action = batch.actions.pair("rotation_quat").double()
    # probe target for the same ordered pair (view 0 → view 1 of each sample)
    _, lat_all, _ = all_images_latents_only(train, [int(i) for i in raw.index])
    lookup = []
    for row, sample in enumerate(samples):
        views_lat = lat_all[row]
        idx = [int((views_lat - sample.latents[k]).abs().sum(-1).argmin()) for k in range(2)]
        lookup.append(idx)
    objects = torch.arange(len(samples))
    views = torch.tensor(lookup)
    probe_target = action_targets(lat_all, "rotation_quat", ActionOptions())(
        objects, views
    ).double()
    lat = raw.latents.double().numpy()  # type: ignore[union-attr]
    scipy_q = torch.tensor(
        [
            (
                Rotation.from_euler("xyz", lat[b, 0, :3]).inv()
                * Rotation.from_euler("xyz", lat[b, 1, :3])
            ).as_quat()
            for b in range(len(samples))
        ]
    )
    print(f"spec actions {spec.actions}; batch latents {tuple(raw.latents.shape)}")  # type: ignore[union-attr]
    print(f"max |train action − probe target| = {(action - probe_target).abs().max():.2e}")
    print(f"max |train action − scipy inv(R1)*R2| = {(action - scipy_q).abs().max():.2e}")
    swapped = (action - scipy_q[:, [0, 1, 2, 3]] * torch.tensor([-1, -1, -1, 1])).abs().max()
    print(f"max |train action − scipy inv(R2)*R1| = {swapped:.2e} (order check: should be large)")
    w_neg = float((action[:, 3] < 0).double().mean())
    print(f"fraction w<0 in the batch: {w_neg:.3f}")


def _sie_spec() -> object:
    from sslequi.methods.base import Method  # noqa: F401

    method = random_init_method("sie_3diebench_cpu")
    return method.spec()  # type: ignore[operator]


def all_images_latents_only(dataset: object, indices: list[int]) -> tuple[None, Tensor, None]:
    lat = torch.stack([dataset.views_of(i).latents for i in indices])  # type: ignore[attr-defined]
    return None, lat.float(), None


# ----------------------------------------------------------------------------- supervised


def cmd_supervised(args: argparse.Namespace) -> None:
    """Backbone + MLP head on [f1, f2] trained with MSE to quat(R1ᵀR2); then probed."""
    from sslequi.actions.rotation import relative_quaternion
    from sslequi.evaluation.features import normalise

    data = load_datasets(args.root)
    imgs, lats = {}, {}
    for split, dataset in data.items():
        imgs[split], lats[split], _ = all_images(dataset)
    info = data["train"].info  # type: ignore[attr-defined]
    method = random_init_method("sie_3diebench_cpu", args.width, tuple(args.overrides))
    backbone = method.backbone  # type: ignore[attr-defined]
    dim = int(method.feature_dim)  # type: ignore[attr-defined]
    head = nn.Sequential(nn.Linear(2 * dim, 256), nn.ReLU(), nn.Linear(256, 4))
    params = list(backbone.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=args.lr)
    gen = torch.Generator().manual_seed(0)
    n, v = imgs["train"].shape[:2]
    start = time.perf_counter()
    for step in range(args.steps):
        obj = torch.randint(0, n, (args.batch_size,), generator=gen)
        views = torch.rand(args.batch_size, v, generator=gen).argsort(1)[:, :2]
        x = imgs["train"][obj.unsqueeze(1), views]  # [B, 2, C, H, W]
        lat = lats["train"][obj.unsqueeze(1), views]
        target = relative_quaternion(lat).squeeze(1).float()
        flat = normalise(x.flatten(0, 1), info.mean, info.std)
        backbone.train()
        f = backbone(flat).reshape(args.batch_size, -1)
        loss = nn.functional.mse_loss(head(f), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == args.steps - 1:
            feats = {"val": encode_all(method, imgs["val"], info.mean, info.std)}
            print(
                f"step {step:>4} train mse {loss.item():.4f}  {joint_head_val(head, feats, lats)}"
                f"  [{time.perf_counter() - start:.0f}s]",
                flush=True,
            )
    feats = {s: encode_all(method, imgs[s], info.mean, info.std) for s in imgs}
    print_probe(
        f"sup w{args.width} {args.steps}st {' '.join(args.overrides)}"[:24],
        SplitFeatures(feats["train"], lats["train"]),
        SplitFeatures(feats["val"], lats["val"]),
        args.draws,
    )


def joint_head_val(head: nn.Module, feats: dict[str, Tensor], lats: dict[str, Tensor]) -> str:
    """The jointly trained head on val: 10 fixed ordered pairs per object."""
    from sslequi.actions.rotation import relative_quaternion
    from sslequi.evaluation import metrics

    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        n, v = feats["val"].shape[:2]
        obj = torch.arange(n).repeat(10)
        views = torch.rand(len(obj), v, generator=g).argsort(1)[:, :2]
        pair = feats["val"][obj.unsqueeze(1), views].flatten(1)
        target = relative_quaternion(lats["val"][obj.unsqueeze(1), views]).squeeze(1).float()
        pred = head(pair)
    return (
        f"val R²pc {metrics.r2_per_component(target, pred):+.3f} "
        f"R²g {metrics.r2_global(target, pred):+.3f} "
        f"(floor {metrics.constant_floor_global(target):.3f})"
    )


# ----------------------------------------------------------------------------- sie


def cmd_sie(args: argparse.Namespace) -> None:
    """The recipe's Method.forward in a fast in-memory loop (preloaded uint8 images,
    ``make_batch_builder`` for views and actions, Adam as the recipe), then y/z stds + probe."""
    from sslequi.augment.builder import make_batch_builder
    from sslequi.types import RawBatch

    data = load_datasets(args.root)
    imgs, lats, labels = {}, {}, {}
    for split, dataset in data.items():
        imgs[split], lats[split], labels[split] = all_images(dataset)
    info = data["train"].info  # type: ignore[attr-defined]
    method = random_init_method(args.recipe, args.width, tuple(args.overrides))
    builder = make_batch_builder(method.spec(), info, None)  # type: ignore[operator]
    optimizer = torch.optim.Adam(method.parameters(), lr=args.lr, weight_decay=1e-6)
    gen = torch.Generator().manual_seed(0)
    n, v = imgs["train"].shape[:2]
    start = time.perf_counter()
    for step in range(args.steps):
        obj = torch.randperm(n, generator=gen)[: args.batch_size]
        views = torch.rand(len(obj), v, generator=gen).argsort(1)[:, :2]
        raw = RawBatch(
            images=imgs["train"][obj.unsqueeze(1), views],
            latents=lats["train"][obj.unsqueeze(1), views],
            labels=labels["train"][obj],
            index=obj,
        )
        method.train()
        output = method(builder(raw))  # type: ignore[operator]
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == args.steps - 1:
            terms = " ".join(f"{k} {float(t):.3f}" for k, t in output.terms.items())
            print(
                f"step {step:>4} loss {output.loss.item():.3f} {terms} "
                f"[{time.perf_counter() - start:.0f}s]",
                flush=True,
            )
    feats = {s: encode_all(method, imgs[s], info.mean, info.std) for s in imgs}
    y = feats["val"].flatten(0, 1)
    print(
        f"y per-dim std: mean {y.std(0).mean():.3f} min {y.std(0).min():.3f}; "
        f"effective rank {_effective_rank(y):.1f}/{y.shape[1]}"
    )
    parts = method.parts()  # type: ignore[operator]
    with torch.no_grad():
        for name in ("projector", "projector_inv", "projector_equi"):
            head = getattr(method, name, None)
            if head is None:
                continue
            sl = {"projector_inv": parts.invariant, "projector_equi": parts.equivariant}.get(
                name, slice(None)
            )
            z = head.eval()(y[:, sl])
            print(
                f"z {name}: per-dim std mean {z.std(0).mean():.3f}; dim {z.shape[1]}; "
                f"effective rank {_effective_rank(z):.1f}"
            )
    for part in ["full"] + (["equivariant"] if parts.equivariant is not None else []):
        sl = slice(None) if part == "full" else parts.equivariant
        print_probe(
            f"{args.tag}/{part}"[:24],
            SplitFeatures(feats["train"][..., sl], lats["train"]),
            SplitFeatures(feats["val"][..., sl], lats["val"]),
            args.draws,
        )
    # linear top-1 on view 0 as a sanity signal of learning at all
    from sslequi.evaluation import metrics

    x_tr, x_va = feats["train"][:, 0], feats["val"][:, 0]
    mu, sd = x_tr.mean(0), x_tr.std(0).clamp_min(1e-6)
    clf = nn.Linear(x_tr.shape[1], int(labels["train"].max()) + 1)
    opt = torch.optim.Adam(clf.parameters(), lr=1e-2)
    for _ in range(300):
        loss = nn.functional.cross_entropy(clf((x_tr - mu) / sd), labels["train"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    top1 = metrics.topk_accuracy(clf((x_va - mu) / sd).detach(), labels["val"], 1)
    print(f"{args.tag}: linear top-1 (view 0) {top1:.3f}")


def _effective_rank(x: Tensor) -> float:
    """exp(entropy of the normalised singular values) of centred x."""
    s = torch.linalg.svdvals(x - x.mean(0))
    p = s / s.sum()
    return float(torch.exp(-(p * p.clamp_min(1e-12).log()).sum()))


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--draws", type=int, default=10, help="fixed eval pairs per object")
    parser.add_argument("--threads", type=int, default=1)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--runs", type=Path, default=Path("runs/compare_3d"))
    p.add_argument("--only", nargs="+", default=["oracle", "pixels", "random", "runs"])
    sub.add_parser("actions")
    s = sub.add_parser("supervised")
    s.add_argument("--steps", type=int, default=300)
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--width", type=float, default=0.125)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("overrides", nargs="*", help="backbone overrides, e.g. backbone.stem=cifar")
    e = sub.add_parser("sie")
    e.add_argument("--recipe", default="sie_3diebench_cpu")
    e.add_argument("--steps", type=int, default=300)
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--tag", default="base")
    e.add_argument("--width", type=float, default=0.125)
    e.add_argument("--lr", type=float, default=1e-3)
    e.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    {"probe": cmd_probe, "actions": cmd_actions, "supervised": cmd_supervised, "sie": cmd_sie}[
        args.command
    ](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
