"""RotNet — self-supervision by predicting which of four rotations an image is shown in.

Gidaris, Singh, Komodakis, ICLR 2018 (arXiv 1803.07728); code ``gidariss/FeatureLearningRotNet``
at ``edafaba`` (methods.md §12). Every augmented image x_i of the batch appears in all four
rotations R_k (k·90° counter-clockwise, ``dataloader.py:rotate_img``), so N images give 4N
samples with labels k ∈ {0, 1, 2, 3}, and the network F is trained with

    L = −(1/4N) Σ_i Σ_k log softmax(F(R_k x_i))_k                       (methods.md §12)

F = rotation head ∘ backbone. The augmentation (CIFAR: RandomCrop(32, pad 4) + horizontal
flip, ``configs/augment/rotnet_cifar.yaml``, parameters recorded in ``Batch.params``) is
drawn once per image; the four rotations of one image share it. The rotations are built
by ``rotate_four_ways``, the same construction as E-SSL's rotated batch (§7.2).

Architecture substitution (harness choice, documented in ``docs/recipes.md``): the official
CIFAR-10 model is a 4-block NIN whose last blocks classify the rotation; here the backbone
is any registered one (the CIFAR recipe: ResNet-18 with the CIFAR stem) and the rotation
head reads its pooled output: linear by default (as mmselfsup's ResNet rotation-prediction
head), or an MLP with ``head_hidden`` widths (Linear → BN → ReLU per hidden layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from sslequi.augment.builder import rotate_four_ways
from sslequi.methods.base import Method, MethodConfig
from sslequi.methods.essl import rotation_classification_loss
from sslequi.registry import register_method
from sslequi.types import Batch, MethodSpec, StepOutput

NUM_ROTATIONS = 4


def rotation_prediction_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """L = −(1/4N) Σ log softmax(logits)_label over the 4N rotated samples (§12); the same
    mean cross-entropy as E-SSL's L_rot."""
    return rotation_classification_loss(logits, labels)


def rotnet_head(feature_dim: int, hidden: list[int]) -> nn.Sequential:
    """Linear(D, 4) for ``hidden == []``; else [Linear → BN → ReLU] per width, then Linear(·, 4)."""
    layers: list[nn.Module] = []
    width = feature_dim
    for out in hidden:
        layers += [nn.Linear(width, out, bias=False), nn.BatchNorm1d(out), nn.ReLU(inplace=True)]
        width = out
    layers.append(nn.Linear(width, NUM_ROTATIONS))
    return nn.Sequential(*layers)


@dataclass
class RotNetConfig(MethodConfig):
    """RotNet options (``configs/method/rotnet.yaml``)."""

    name: str = "rotnet"
    head_hidden: list[int] = field(default_factory=list)  # [] = linear rotation head

    def __post_init__(self) -> None:
        self.head_hidden = [int(w) for w in self.head_hidden]
        if any(w < 1 for w in self.head_hidden):
            raise ValueError(f"rotnet.head_hidden widths must be ≥ 1, got {self.head_hidden}")


@register_method("rotnet", config=RotNetConfig)
class RotNet(Method):
    """Backbone + rotation head, cross-entropy over each image in its four rotations."""

    config_class = RotNetConfig
    config: RotNetConfig

    def __init__(self, config: RotNetConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        self.rotation_head = rotnet_head(feature_dim, config.head_hidden)

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=1)

    def forward(self, batch: Batch) -> StepOutput:
        images = batch.views[0]
        rotated = rotate_four_ways(images)  # [x, R_1 x, R_2 x, R_3 x] blocks, labels k
        y = self.backbone(rotated.images)
        logits = self.rotation_head(y)
        loss = rotation_prediction_loss(logits, rotated.labels)
        accuracy = (logits.argmax(dim=1) == rotated.labels).float().mean()
        unrotated = y[: images.shape[0]]  # block k = 0: the augmented images themselves
        return StepOutput(
            loss=loss,
            terms={"rot": loss.detach(), "rot_acc": accuracy.detach()},
            features=[unrotated.detach()],
        )
