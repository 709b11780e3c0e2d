"""MRR, H@k and PRE of a method's learned predictor (evaluation.md §6–7;
``sslequi.evaluation.predictor``): runs once, on the equivariant part."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sslequi.data.base import ObjectDataset
from sslequi.evaluation.predictor import UnsupportedProbe, check_predictor, predictor_metrics
from sslequi.evaluation.probes import Probe, register_probe

if TYPE_CHECKING:
    from sslequi.evaluation.runner import Evaluation


@register_probe("mrr")
class PredictorProbe(Probe):
    """Rank of the true transformed view among candidates, under the predictor's prediction."""

    per_part = False

    def check(self, evaluation: Evaluation) -> None:
        check_predictor(evaluation.method)
        source = getattr(evaluation.method, "predictor_representation", None)
        if source is not None and source not in evaluation.representations:
            raise UnsupportedProbe(
                f"{type(evaluation.method).__name__}.predictor_representation {source!r} is "
                f"not a declared representation ({sorted(evaluation.representations)})"
            )
        train = evaluation.datasets[evaluation.cfg.train_split]
        width = train.info.latent_dim
        if width is None or width < 3:
            raise UnsupportedProbe(
                f"probe 'mrr' needs dataset latents of width ≥ 3, but dataset "
                f"{type(train).__name__} has " + ("none" if width is None else f"width {width}")
            )
        if not isinstance(train, ObjectDataset):
            raise UnsupportedProbe("probe 'mrr' needs an object dataset with several views")

    def run(self, evaluation: Evaluation, part: str) -> None:
        cfg = evaluation.cfg
        settings = cfg.probe.mrr
        method = evaluation.method
        # What embed_equivariant reads: the pooled backbone output, or a declared computed
        # representation (CapsIE's predictor acts on the capsule poses).
        source = getattr(method, "predictor_representation", None) or "backbone"
        if settings.mode == "train-train":
            split = cfg.train_split
            query, extra = evaluation.features(split, representation=source), None
        else:
            split = evaluation.eval_splits[0]
            query = evaluation.features(split, representation=source)
            extra = (
                evaluation.features(cfg.train_split, representation=source)
                if settings.mode == "val-all"
                else None
            )
        scores = predictor_metrics(method, query, settings, evaluation.device, extra)
        protocol_extra = (
            f"mode={settings.mode};normalize={settings.normalize};"
            f"source_view={settings.source_view};candidates={scores.num_candidates};"
            f"pre_bank={scores.bank_size}"
            + ("" if source == "backbone" else f";representation={source}")
        )
        has_part = method.parts().equivariant is not None or source != "backbone"
        chosen = "equivariant" if has_part else "full"
        protocol = evaluation.protocol_for(
            "mrr",
            chosen,
            "mrr/hit@k/pre",
            head=f"predictor({method.predictor_action})",
            target=str(method.predictor_action),
            extra=protocol_extra,
        )
        chance = scores.values.pop("mrr_chance")
        for metric, value in scores.values.items():
            floor = chance if metric == "mrr" else None
            if metric.startswith("hit@"):
                floor = min(1.0, int(metric[4:]) / scores.num_candidates)
            evaluation.add_row(protocol, metric, split, value, floor, scores.num_queries)
