"""Projector/predictor builders and the MLP-spec parser."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sslequi.models.heads import (
    byol_predictor,
    byol_projector,
    mlp_projector,
    output_dim,
    parse_mlp,
    simsiam_predictor,
    simsiam_projector,
)


def test_parse_mlp() -> None:
    assert parse_mlp("2048-2048-2048") == (2048, 2048, 2048)
    assert parse_mlp(" 512 ") == (512,)


@pytest.mark.parametrize("bad", ["", "2048-x", "2048--2048", "0-10"])
def test_parse_mlp_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="MLP spec|empty"):
        parse_mlp(bad)


def test_sie_projector_layout() -> None:
    head = mlp_projector(16, "32-32-8")
    layers = list(head.layers)
    kinds = [type(m) for m in layers]
    assert kinds == [
        nn.Linear,
        nn.BatchNorm1d,
        nn.ReLU,
        nn.Linear,
        nn.BatchNorm1d,
        nn.ReLU,
        nn.Linear,
    ]
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    assert [m.bias is not None for m in linears] == [True, True, False]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 32), (32, 32), (32, 8)]
    assert head(torch.randn(4, 16)).shape == (4, 8)
    assert output_dim(head) == 8


def test_single_layer_projector_is_linear_without_bias() -> None:
    head = mlp_projector(16, (4,))
    assert len(head.layers) == 1 and head.layers[0].bias is None


def test_lightly_heads_sizes() -> None:
    assert output_dim(byol_projector(16, 32, 8)) == 8
    predictor = byol_predictor(8, 32)
    assert predictor(torch.randn(3, 8)).shape == (3, 8)
    projector = simsiam_projector(16, 32, 24)
    last_bn = [m for m in projector.modules() if isinstance(m, nn.BatchNorm1d)][-1]
    assert last_bn.affine is False  # SimSiam: output BN without affine
    assert simsiam_predictor(24, 6)(torch.randn(3, 24)).shape == (3, 24)
