"""Pipelines: ordered ops per view, validated against the method and dataset at config
time, with ``sample`` (draw parameters) split from ``apply`` (render) so replay is exact.

``build_pipeline(config, spec, info)`` turns an ``AugmentConfig`` into an
``AugmentPipeline`` that produces exactly the views a ``MethodSpec`` declares, or raises
``AugmentConfigError`` naming the problem.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sslequi.augment.config import AugmentConfig, ViewConfig
from sslequi.augment.ops import (
    OPS,
    AugmentConfigError,
    HorizontalFlip,
    Normalize,
    NormalizeConfig,
    Op,
    OpConfig,
    RandomResizedCrop,
    Size,
)
from sslequi.augment.params import CropRecord, OpRecord, ViewParams
from sslequi.data.base import DatasetInfo
from sslequi.registry import RegistryError
from sslequi.types import MethodSpec

__all__ = [
    "AugmentConfigError",
    "AugmentPipeline",
    "ViewPipeline",
    "build_pipeline",
    "check_chunking",
    "parse_op",
]


def _coerce(value: Any) -> Any:
    """YAML lists → tuples (op configs use tuples for ranges)."""
    if isinstance(value, list):
        return tuple(_coerce(v) for v in value)
    return value


def parse_op(spec: Mapping[str, Any] | Op, where: str = "") -> Op:
    """``{op: name, p: ..., <fields>}`` → a configured ``Op``; clear errors otherwise."""
    if isinstance(spec, Op):
        return spec
    if not isinstance(spec, Mapping) or "op" not in spec:
        raise AugmentConfigError(f"{where}each op must be a mapping with an 'op' key, got {spec!r}")
    name = str(spec["op"])
    try:
        entry = OPS.entry(name)
    except RegistryError as err:
        raise AugmentConfigError(f"{where}{err}") from None
    config_cls = entry.config or OpConfig
    known = {f.name for f in dataclasses.fields(config_cls)}
    values = {k: _coerce(v) for k, v in spec.items() if k != "op"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise AugmentConfigError(
            f"{where}op {name!r} has no field(s) {unknown}; its fields: {sorted(known)}"
        )
    try:
        config = config_cls(**values)
    except TypeError as err:
        raise AugmentConfigError(f"{where}op {name!r}: {err}") from None
    try:
        return entry.obj(config)
    except AugmentConfigError as err:
        raise AugmentConfigError(f"{where}{err}") from None


class ViewPipeline:
    """The ops of one view, in order, with their input sizes fixed at config time."""

    def __init__(
        self,
        ops: Sequence[Op],
        in_size: Size,
        name: str = "",
        chunk_shared: bool = False,
        source_view: int | None = None,
    ) -> None:
        self.ops = list(ops)
        self.name = name
        self.chunk_shared = chunk_shared
        self.source_view = source_view
        self.in_size = in_size
        self._validate()

    def _validate(self) -> None:
        seen: set[str] = set()
        records: dict[str, str] = {}
        size = self.in_size
        for i, op in enumerate(self.ops):
            where = f"view {self.name or '?'}, op {i} ({op.name}): "
            if op.name in seen:
                raise AugmentConfigError(f"{where}op {op.name!r} appears twice in one view")
            seen.add(op.name)
            field = op.record_field
            if field is not None and field in records:  # e.g. crop and pad_crop: one record
                raise AugmentConfigError(
                    f"{where}op {op.name!r} and op {records[field]!r} both record "
                    f"ViewParams.{field}; use one of them per view"
                )
            if field is not None:
                records[field] = op.name
            if isinstance(op, Normalize) and i != len(self.ops) - 1:
                raise AugmentConfigError(f"{where}normalize must be the last op of a view")
            try:
                op.check_input(size)
            except AugmentConfigError as err:
                raise AugmentConfigError(f"view {self.name or '?'}: {err}") from None
            size = op.output_size(size)
        self.out_size = size

    def sizes(self, in_size: Size) -> list[Size]:
        """The input size of each op for an input of ``in_size``."""
        sizes = []
        for op in self.ops:
            sizes.append(in_size)
            in_size = op.output_size(in_size)
        return sizes

    def sample(
        self,
        batch_size: int,
        in_size: Size,
        device: torch.device,
        generator: torch.Generator | None = None,
        chunks: int | None = None,
        independent_chunks: bool = True,
        crop: CropRecord | None = None,
    ) -> ViewParams:
        """Draw every op's parameters, once per sample, or with ``chunks`` = K once per
        contiguous chunk of B/K samples (``independent_chunks`` False: one draw shared by
        every chunk)."""
        n = batch_size
        if chunks is not None:
            if batch_size % chunks:
                raise AugmentConfigError(
                    f"chunk-shared view {self.name!r}: batch size {batch_size} is not "
                    f"divisible by {chunks} chunks (augment.chunks / augment.chunk_size)"
                )
            n = chunks if independent_chunks else 1
        params = ViewParams(chunks=chunks)
        for i, (op, size) in enumerate(zip(self.ops, self.sizes(in_size), strict=True)):
            if crop is not None and i == 0 and isinstance(op, RandomResizedCrop):
                params.crop = crop  # the leading crop, drawn in a worker (full-image crops)
                continue
            record = op.sample(n, size, device, generator)
            if record is None or op.record_field is None:
                continue
            if n != batch_size:
                repeat = batch_size // n
                record = record.map_tensors(lambda t, r=repeat: t.repeat_interleave(r, dim=0))
            setattr(params, op.record_field, record)
        return params

    def apply(self, x: Tensor, params: ViewParams, precropped: bool = False) -> Tensor:
        """Render the view from ``x`` ([B, C, H, W], uint8 or float in [0, 1]);
        ``precropped``: ``x`` is already the leading crop's output (full-image crops)."""
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        i = 1 if precropped and isinstance(self.ops[0], RandomResizedCrop) else 0
        while i < len(self.ops):
            op = self.ops[i]
            record = self._record(op, params)
            nxt = self.ops[i + 1] if i + 1 < len(self.ops) else None
            if isinstance(op, RandomResizedCrop) and isinstance(nxt, HorizontalFlip):
                flip = self._record(nxt, params)
                assert flip is not None
                x = op.apply(x, record, flip=flip.applied)  # crop, resize and flip in one pass
                i += 2
                continue
            x = op.apply(x, record)
            i += 1
        return x

    @staticmethod
    def _record(op: Op, params: ViewParams) -> OpRecord | None:
        if op.record_field is None:
            return None
        record = getattr(params, op.record_field)
        if record is None:
            raise ValueError(f"params carry no {op.record_field!r} record for op {op.name!r}")
        return record

    def __call__(
        self, x: Tensor, generator: torch.Generator | None = None, chunks: int | None = None
    ) -> tuple[Tensor, ViewParams]:
        params = self.sample(x.shape[0], (x.shape[-2], x.shape[-1]), x.device, generator, chunks)
        return self.apply(x, params), params


@dataclass
class AugmentPipeline:
    """Every view a method consumes: ``views[i]`` renders main view i; ``rotated`` is
    E-SSL's extra view (or None)."""

    views: list[ViewPipeline]
    rotated: ViewPipeline | None
    distinct_views: bool  # True: view i reads delivered view ``source_of(i)``
    chunks: int
    independent_chunks: bool
    rotated_source: int = 0
    chunk_size: int | None = None  # images per chunk; set: K = batch / chunk_size

    def source_of(self, i: int, available: int) -> int:
        """The delivered view that main view ``i`` is rendered from."""
        if not self.distinct_views:
            return 0
        src = self.views[i].source_view
        return (i if src is None else src) % available

    def chunks_for(self, view: ViewPipeline, batch_size: int | None = None) -> int | None:
        """K for a chunk-shared ``view`` (None for a per-sample one): ``chunks``, or
        batch / ``chunk_size`` when a chunk size is set."""
        if not view.chunk_shared:
            return None
        if self.chunk_size is None or batch_size is None:
            return self.chunks
        check_chunking(batch_size, self.chunks, self.chunk_size)
        return batch_size // self.chunk_size

    def sample(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> tuple[list[ViewParams], ViewParams | None]:
        """Parameters for every view of ``images`` [B, V, C, H, W]."""
        b = images.shape[0]
        size = (images.shape[-2], images.shape[-1])
        params = [
            view.sample(
                b,
                size,
                images.device,
                generator,
                self.chunks_for(view, b),
                self.independent_chunks,
            )
            for view in self.views
        ]
        rotated = None
        if self.rotated is not None:
            rotated = self.rotated.sample(b, size, images.device, generator)
        return params, rotated

    def sample_precropped(
        self,
        images: Tensor,
        crops: Sequence[CropRecord],
        rotated_crop: CropRecord | None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[ViewParams], ViewParams | None]:
        """Parameters of worker-cropped views (``dataset.full_image_crops``): the leading
        crops come from the workers' boxes, every other op is drawn here."""
        b = images.shape[0]
        size = (images.shape[-2], images.shape[-1])
        params = [
            view.sample(b, size, images.device, generator, crop=crop)
            for view, crop in zip(self.views, crops, strict=True)
        ]
        rotated = None
        if self.rotated is not None:
            rotated = self.rotated.sample(b, size, images.device, generator, crop=rotated_crop)
        return params, rotated

    def apply_precropped(
        self,
        images: Tensor,
        rotated_images: Tensor | None,
        params: list[ViewParams],
        rotated_params: ViewParams | None = None,
    ) -> tuple[list[Tensor], Tensor | None]:
        """Render worker-cropped views: ``images[:, i]`` is main view i's crop and
        ``rotated_images`` [B, C, s, s] the rotated view's; the other ops run here."""
        views = [
            view.apply(images[:, i], p, precropped=True)
            for i, (view, p) in enumerate(zip(self.views, params, strict=True))
        ]
        rotated = None
        if self.rotated is not None:
            if rotated_images is None or rotated_params is None:
                raise ValueError("this pipeline has a rotated view: pass its crop and params")
            rotated = self.rotated.apply(rotated_images, rotated_params, precropped=True)
        return views, rotated

    def apply(
        self,
        images: Tensor,
        params: list[ViewParams],
        rotated_params: ViewParams | None = None,
    ) -> tuple[list[Tensor], Tensor | None]:
        """Render every view from ``images`` [B, V, C, H, W] and recorded ``params``."""
        v = images.shape[1]
        views = [
            view.apply(images[:, self.source_of(i, v)], p)
            for i, (view, p) in enumerate(zip(self.views, params, strict=False))
        ]
        rotated = None
        if self.rotated is not None:
            if rotated_params is None:
                raise ValueError("this pipeline has a rotated view: pass its params")
            src = self.rotated_source % v if self.distinct_views else 0
            rotated = self.rotated.apply(images[:, src], rotated_params)
        return views, rotated


def check_chunking(batch_size: int, chunks: int, chunk_size: int | None) -> int:
    """The number of chunks K of a batch of ``batch_size`` (per process), or an
    ``AugmentConfigError`` naming the option: the batch must split into whole chunks of at
    least 2 images (CARE's Gram matching is over off-diagonal pairs, methods.md §8.1)."""
    if chunk_size is not None:
        if chunk_size < 2 or batch_size % chunk_size:
            raise AugmentConfigError(
                f"augment.chunk_size={chunk_size}: a batch of {batch_size} must split into "
                "whole chunks of at least 2 images; set augment.chunk_size to a divisor ≥ 2 "
                "of the batch (or train.batch_size to a multiple of it)"
            )
        return batch_size // chunk_size
    if batch_size % chunks or batch_size // chunks < 2:
        raise AugmentConfigError(
            f"augment.chunks={chunks}: a batch of {batch_size} must split into {chunks} "
            "chunks of at least 2 images; lower augment.chunks, set augment.chunk_size, or "
            "raise train.batch_size"
        )
    return chunks


def _parse_view(view: ViewConfig, in_size: Size, info: DatasetInfo, normalize: bool, label: str):
    ops = [parse_op(op, where=f"view {label}, op {i}: ") for i, op in enumerate(view.ops)]
    if normalize and not any(isinstance(op, Normalize) for op in ops):
        ops.append(Normalize(NormalizeConfig(mean=tuple(info.mean), std=tuple(info.std))))
    for op in ops:
        if isinstance(op, Normalize) and not op.config.mean:
            op.config = NormalizeConfig(mean=tuple(info.mean), std=tuple(info.std))
    return ViewPipeline(
        ops,
        in_size,
        name=label,
        chunk_shared=view.chunk_shared,
        source_view=view.source_view,
    )


def _expand_counts(config: AugmentConfig, spec: MethodSpec) -> list[tuple[ViewConfig, str]]:
    """Each view entry repeated ``count`` times; ``count: null`` fills up to the spec."""
    if not config.views:
        return [(ViewConfig(ops=[]), f"view{i}") for i in range(spec.num_views)]
    open_entries = [i for i, v in enumerate(config.views) if v.count is None]
    if len(open_entries) > 1:
        raise AugmentConfigError(
            f"augment {config.name!r}: at most one view entry may have count null"
        )
    fixed = sum(v.count or 0 for v in config.views)
    for v in config.views:
        if v.count is not None and v.count < 0:
            raise AugmentConfigError(f"augment {config.name!r}: view count must be ≥ 0")
    counts = [v.count for v in config.views]
    if open_entries:
        fill = spec.num_views - fixed
        if fill < 1:
            raise AugmentConfigError(
                f"augment {config.name!r} has {fixed} fixed views plus an open entry, but the "
                f"method declares {spec.num_views} views"
            )
        counts[open_entries[0]] = fill
    total = sum(c or 0 for c in counts)
    if total != spec.num_views:
        described = " + ".join(
            f"{c} {v.name or f'entry {i}'!r}"
            for i, (v, c) in enumerate(zip(config.views, counts, strict=False))
        )
        raise AugmentConfigError(
            f"augment {config.name!r} produces {total} views ({described}) but the method "
            f"declares {spec.num_views} (structure {spec.structure!r}); set the views' "
            "count (e.g. augment.views.0.count=...) or pick a matching recipe"
        )
    expanded = []
    for i, (view, count) in enumerate(zip(config.views, counts, strict=False)):
        for j in range(count or 0):
            expanded.append((view, f"{view.name or f'view{i}'}{j if (count or 0) > 1 else ''}"))
    return expanded


def _default_rotated_view(
    config: AugmentConfig, spec: MethodSpec, info: DatasetInfo, main: list[ViewConfig]
) -> ViewConfig:
    """E-SSL's extra view when the recipe names none (methods.md §7.2): on 2D data the
    source view's pipeline with its crop set to the spec's size and scale; on 3D data a
    random resized crop of the source view at half the image size."""
    assert spec.rotated_view is not None
    rv = spec.rotated_view
    if info.distinct_views:
        crop = {"op": "crop", "size": max(1, info.image_size // 2), "scale": list(rv.scale)}
        return ViewConfig(ops=[crop], name="rotated")
    source = main[rv.source_view % len(main)] if main else ViewConfig(ops=[])
    ops: list[Any] = []
    has_crop = False
    for op in source.ops:
        op = dict(op)
        if op.get("op") == "crop":
            op["size"], op["scale"], has_crop = rv.size, list(rv.scale), True
        ops.append(op)
    if not has_crop:
        ops.insert(0, {"op": "crop", "size": rv.size, "scale": list(rv.scale)})
    return ViewConfig(ops=ops, name="rotated")


def build_pipeline(
    config: AugmentConfig | None, spec: MethodSpec, info: DatasetInfo
) -> AugmentPipeline:
    """Validate ``config`` against ``spec`` and ``info`` and build the pipeline.

    Raises ``AugmentConfigError`` for: an unknown op or field, a probability outside
    [0, 1], an inverted range, a crop larger than the image, a recipe whose views do not
    match the method's declaration (count, structure, chunk sharing)."""
    config = config or AugmentConfig()
    if config.structure is not None and config.structure != spec.structure:
        raise AugmentConfigError(
            f"augment {config.name!r} is written for structure {config.structure!r}, but the "
            f"method declares {spec.structure!r} with {spec.num_views} views"
        )
    if config.chunks < 1:
        raise AugmentConfigError(f"augment {config.name!r}: chunks must be ≥ 1")
    in_size = (info.image_size, info.image_size)
    expanded = _expand_counts(config, spec)
    views = [_parse_view(v, in_size, info, config.normalize, label) for v, label in expanded]
    has_shared = any(v.chunk_shared for v in views)
    if spec.chunk_shared_params and not has_shared:
        raise AugmentConfigError(
            f"the method needs chunk-shared parameters (CARE), but augment {config.name!r} has "
            "no view with chunk_shared: true"
        )
    if has_shared and not spec.chunk_shared_params:
        raise AugmentConfigError(
            f"augment {config.name!r} has chunk-shared views, but the method does not declare "
            "chunk_shared_params"
        )
    if config.chunk_size is not None and config.chunk_size < 2:
        raise AugmentConfigError(f"augment.chunk_size must be ≥ 2, got {config.chunk_size}")
    shared_sources = {v.source_view for v in views if v.chunk_shared}
    if info.distinct_views and has_shared and (None in shared_sources or len(shared_sources) > 1):
        raise AugmentConfigError(
            f"augment {config.name!r}: on a dataset of distinct views the chunk-shared pair "
            "must be cut from one delivered view (t1 X and t2 X of the same X); give every "
            f"chunk_shared view the same source_view (got {sorted(map(str, shared_sources))})"
        )
    aug_actions = [a for a in spec.actions if a.startswith("aug_params")]
    if aug_actions and all(all(op.record_field is None for op in view.ops) for view in views):
        raise AugmentConfigError(
            f"the method needs the 2D action encodings {aug_actions}, but augment "
            f"{config.name!r} applies no random op to any view"
        )
    rotated = None
    rotated_source = 0
    if spec.rotated_view is not None:
        rv_config = config.rotated_view or _default_rotated_view(
            config, spec, info, [v for v, _ in expanded]
        )
        rotated = _parse_view(rv_config, in_size, info, config.normalize, "rotated")
        if rotated.out_size[0] != rotated.out_size[1]:
            raise AugmentConfigError("the rotated view must be square to turn by 90°")
        rotated_source = spec.rotated_view.source_view
    return AugmentPipeline(
        views=views,
        rotated=rotated,
        distinct_views=info.distinct_views,
        chunks=config.chunks,
        independent_chunks=config.independent_chunks,
        rotated_source=rotated_source,
        chunk_size=config.chunk_size,
    )
