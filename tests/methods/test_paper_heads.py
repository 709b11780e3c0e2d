"""Head shapes the E-SSL recipes need (issue 11): E-SSL's SimCLR projectors end in a
BatchNorm and have no Linear biases (methods.md §7.3); the ImageNet E-SimSiam rotation head
keeps its second ReLU while the CIFAR one drops it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sslequi.methods.essl import rotation_head
from sslequi.methods.simclr import SimCLR, SimCLRConfig
from sslequi.models.heads import mlp_projector


def _layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if not isinstance(m, nn.Sequential | type(module))]


def _signature(layers: list[nn.Module]) -> list[str]:
    out = []
    for m in layers:
        if isinstance(m, nn.Linear):
            out.append(f"Lin({m.in_features},{m.out_features},bias={m.bias is not None})")
        elif isinstance(m, nn.BatchNorm1d):
            out.append(f"BN(affine={m.affine})")
        elif isinstance(m, nn.LayerNorm):
            out.append(f"LN({m.normalized_shape[0]})")
        else:
            out.append(type(m).__name__)
    return out


def _essl_cifar_projector(dim: int, hidden: int, out: int) -> nn.Sequential:
    """rdangovs/essl cifar10/main.py ProjectionMLP, written out (methods.md §7.3)."""
    return nn.Sequential(
        nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, out, bias=False), nn.BatchNorm1d(out, affine=False),
    )  # fmt: skip


def test_essl_cifar_projector_equals_the_reference_module() -> None:
    torch.manual_seed(0)
    ours = mlp_projector(12, "16-8", hidden_bias=False, final_bn="no_affine")
    reference = _essl_cifar_projector(12, 16, 8)
    assert _signature(_layers(ours)) == _signature(list(reference))
    reference.load_state_dict(
        dict(zip(reference.state_dict(), ours.state_dict().values(), strict=True))
    )
    x = torch.randn(6, 12)
    ours.train(), reference.train()
    torch.testing.assert_close(ours(x), reference(x))


def test_essl_imagenet_projector_ends_with_an_affine_bn() -> None:
    """imagenet/simclr/main.py: sizes 2048-2048-2048-128, Linear(no bias)-BN-ReLU, last BN."""
    head = mlp_projector(32, "32-32-8", hidden_bias=False, final_bn="affine")
    assert _signature(_layers(head)) == [
        "Lin(32,32,bias=False)", "BN(affine=True)", "ReLU",
        "Lin(32,32,bias=False)", "BN(affine=True)", "ReLU",
        "Lin(32,8,bias=False)", "BN(affine=True)",
    ]  # fmt: skip


def test_simclr_projector_options_and_the_sie_default() -> None:
    sie = SimCLR(SimCLRConfig(projector="16-8"), nn.Identity(), 12)
    assert _signature(_layers(sie.projector))[-1] == "Lin(16,8,bias=False)"  # SIE: no final BN
    assert _signature(_layers(sie.projector))[0] == "Lin(12,16,bias=True)"
    essl = SimCLR(
        SimCLRConfig(projector="16-8", projector_hidden_bias=False, projector_final_bn="no_affine"),
        nn.Identity(),
        12,
    )
    assert _signature(_layers(essl.projector)) == _signature(list(_essl_cifar_projector(12, 16, 8)))
    with pytest.raises(ValueError, match="projector_final_bn"):
        SimCLRConfig(projector_final_bn="batchnorm")


def test_rotation_heads_per_dataset() -> None:
    """CIFAR E-SimSiam: no second ReLU; ImageNet E-SimSiam: Lin-LN-ReLU-Lin-LN-ReLU-
    Lin(2048, 256)-LN-Lin(256, 4) (imagenet/simsiam/simsiam/builder.py)."""
    cifar = rotation_head(8, hidden=16, second_relu=False)
    assert _signature(list(cifar)) == [
        "Lin(8,16,bias=True)", "LN(16)", "ReLU", "Lin(16,16,bias=True)", "LN(16)",
        "Lin(16,4,bias=True)",
    ]  # fmt: skip
    imagenet = rotation_head(8, hidden=16, second_relu=True, bottleneck=4)
    assert _signature(list(imagenet)) == [
        "Lin(8,16,bias=True)", "LN(16)", "ReLU", "Lin(16,16,bias=True)", "LN(16)", "ReLU",
        "Lin(16,4,bias=True)", "LN(4)", "Lin(4,4,bias=True)",
    ]  # fmt: skip
