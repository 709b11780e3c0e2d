"""Weighted cosine kNN (evaluation.md §3): an un-augmented train bank, no training."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from sslequi.evaluation import metrics
from sslequi.evaluation.probes import Probe, register_probe

if TYPE_CHECKING:
    from sslequi.evaluation.runner import Evaluation


@register_probe("knn")
class KNNProbe(Probe):
    """Top-1 / top-5 of a k-nearest-neighbour vote over view 0 of every train object."""

    def run(self, evaluation: Evaluation, part: str) -> None:
        settings = evaluation.cfg.probe.knn
        train_split = evaluation.cfg.train_split
        device = evaluation.device
        bank = evaluation.part_features(train_split, part)[:, 0].to(device)
        bank_labels = evaluation.features(train_split).labels
        num_classes = int(evaluation.datasets[train_split].info.num_classes)
        for split in evaluation.eval_splits:
            labels = evaluation.features(split).labels
            queries = evaluation.part_features(split, part)[:, 0].to(device)
            scores = metrics.knn_class_scores(
                bank, bank_labels.to(device), queries, num_classes, settings.k, settings.temperature
            ).cpu()
            majority = float(torch.bincount(labels).max()) / len(labels)
            for k in (1, 5):
                if k > num_classes:
                    continue
                protocol = evaluation.protocol_for(
                    "knn",
                    part,
                    f"top{k}",
                    head=f"knn k={settings.k} T={settings.temperature}",
                    n_train=int(bank.shape[0]),
                    extra="cosine;bank=un-augmented train view 0;query=view 0",
                )
                value = metrics.topk_accuracy(scores, labels, k)
                floor = majority if k == 1 else None
                evaluation.add_row(protocol, f"top{k}", split, value, floor, len(scores))
