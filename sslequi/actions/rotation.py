"""3D relative-action encodings computed from 3DIEBench-family latents (datasets.md §1.10).

Every encoding reads ``ActionInputs.latents`` [B, V, L] (latent semantics of datasets.md
§1.4; 3DIEBench-T adds the translation at indices 7–9) and returns [B, V − 1, k]: entry
``i`` is the action taking view ``i`` to view ``i + 1``.

Rotations follow the official loaders exactly (SIE ``src/dataset.py``, EquiCaps,
seq-JEPA): ``R = Rotation.from_euler('xyz', a)`` (extrinsic, R = R_z·R_y·R_x) and the
relative rotation ``R₁⁻¹·R₂``. Its quaternion is the *product of the absolute
quaternions* ``conj(q₁) ⊗ q₂``, which is what scipy's ``inv() * ...`` then ``as_quat()``
computes, sign included (w < 0 for ≈ 4.4 % of in-distribution pairs, datasets.md §1.5).
Converting the matrix R₁ᵀR₂ back to a quaternion would give another, discontinuous sign
convention; it is deliberately not used. ``ActionOptions.canonicalize_quaternion``
flips to w ≥ 0 (off by default, as in the papers).

All arithmetic runs in float64 and is cast back to the latents' dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sslequi.actions import ActionInputs, register_action

ROTATION = slice(0, 3)  # Euler 'xyz' extrinsic angles (datasets.md §1.4)
COLOR_INDICES = (3, 6)  # floor hue, spot hue
OTHER_LATENTS = (3, 4, 5, 6)  # floor hue, spot θ, spot φ, spot hue
TRANSLATION = slice(7, 10)  # 3DIEBench-T (datasets.md §2)


# --- quaternion / rotation helpers (scalar-last (x, y, z, w), as scipy) -----------------


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product ``a ⊗ b`` of scalar-last quaternions [..., 4] (scipy's ``*``)."""
    ax, ay, az, aw = a.unbind(-1)
    bx, by, bz, bw = b.unbind(-1)
    return torch.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        dim=-1,
    )


def quat_conjugate(q: Tensor) -> Tensor:
    """Inverse of a unit quaternion (scipy's ``inv()``: negates the vector part)."""
    return torch.cat([-q[..., :3], q[..., 3:]], dim=-1)


def euler_xyz_to_quat(angles: Tensor) -> Tensor:
    """scipy ``Rotation.from_euler('xyz', angles).as_quat()`` for angles [..., 3].

    Extrinsic x, then y, then z: q = q_z ⊗ q_y ⊗ q_x with elementary quaternions
    (sin(a/2)·axis, cos(a/2)); no sign canonicalisation, exactly like scipy.
    """
    half = angles / 2
    s, c = torch.sin(half), torch.cos(half)
    zero = torch.zeros_like(s[..., 0])
    qx = torch.stack([s[..., 0], zero, zero, c[..., 0]], dim=-1)
    qy = torch.stack([zero, s[..., 1], zero, c[..., 1]], dim=-1)
    qz = torch.stack([zero, zero, s[..., 2], c[..., 2]], dim=-1)
    return quat_multiply(qz, quat_multiply(qy, qx))


def euler_xyz_to_matrix(angles: Tensor) -> Tensor:
    """``Rotation.from_euler('xyz', angles).as_matrix()``: R_z·R_y·R_x, [..., 3, 3]."""
    cx, cy, cz = torch.cos(angles).unbind(-1)
    sx, sy, sz = torch.sin(angles).unbind(-1)
    rows = [
        cz * cy,
        cz * sy * sx - sz * cx,
        cz * sy * cx + sz * sx,
        sz * cy,
        sz * sy * sx + cz * cx,
        sz * sy * cx - cz * sx,
        -sy,
        cy * sx,
        cy * cx,
    ]
    return torch.stack(rows, dim=-1).reshape(*angles.shape[:-1], 3, 3)


def matrix_to_euler_xyz(matrix: Tensor) -> Tensor:
    """``Rotation.from_matrix(m).as_euler('xyz')`` away from gimbal lock (|a_y| < π/2).

    For R = R_z(c)·R_y(b)·R_x(a): b = −asin(R₂₀), a = atan2(R₂₁, R₂₂), c = atan2(R₁₀, R₀₀)
    (scipy's branch: b ∈ [−π/2, π/2]).
    """
    b = -torch.asin(matrix[..., 2, 0].clamp(-1.0, 1.0))
    a = torch.atan2(matrix[..., 2, 1], matrix[..., 2, 2])
    c = torch.atan2(matrix[..., 1, 0], matrix[..., 0, 0])
    return torch.stack([a, b, c], dim=-1)


# --- validation ----------------------------------------------------------------------


def _latents(inputs: ActionInputs, encoding: str, min_dim: int = 7) -> Tensor:
    latents = inputs.latents
    if latents is None:
        raise ValueError(
            f"action {encoding!r} is computed from dataset latents, but this batch has none: "
            "use a 3DIEBench-family dataset (3diebench, 3diebench_t, 3diebench_ood)"
        )
    if latents.dim() != 3 or latents.shape[1] < 2:
        raise ValueError(
            f"action {encoding!r} needs latents [B, V ≥ 2, L], got shape {tuple(latents.shape)}"
        )
    if latents.shape[-1] < min_dim:
        need = "3DIEBench-T latents (10 values: + translation)" if min_dim > 7 else "7 values"
        raise ValueError(
            f"action {encoding!r} needs {need}; the latents have {latents.shape[-1]} values"
        )
    return latents.double()


def _consecutive(x: Tensor) -> tuple[Tensor, Tensor]:
    """Split [B, V, ...] into (views 0..V−2, views 1..V−1)."""
    return x[:, :-1], x[:, 1:]


def relative_quaternion(latents: Tensor, canonicalize: bool = False) -> Tensor:
    """quat(R_iᵀ R_{i+1}) along the views, [B, V − 1, 4] float64 (scipy composition path)."""
    q = euler_xyz_to_quat(latents[..., ROTATION].double())
    q_from, q_to = _consecutive(q)
    rel = quat_multiply(quat_conjugate(q_from), q_to)
    if canonicalize:
        rel = torch.where(rel[..., 3:] < 0, -rel, rel)
    return rel


def relative_matrix(latents: Tensor) -> Tensor:
    """R_iᵀ R_{i+1} along the views, [B, V − 1, 3, 3] float64."""
    rot = euler_xyz_to_matrix(latents[..., ROTATION].double())
    r_from, r_to = _consecutive(rot)
    return r_from.transpose(-1, -2) @ r_to


# --- registered encodings ------------------------------------------------------------


@register_action("rotation_quat")
def rotation_quat(inputs: ActionInputs) -> Tensor:
    """Relative rotation quaternion (x, y, z, w), [B, V − 1, 4] (datasets.md §1.5)."""
    latents = _latents(inputs, "rotation_quat")
    rel = relative_quaternion(latents, inputs.options.canonicalize_quaternion)
    return rel.to(inputs.latents.dtype)  # type: ignore[union-attr]


@register_action("rotation_matrix")
def rotation_matrix(inputs: ActionInputs) -> Tensor:
    """R_iᵀ R_{i+1} flattened row-major, [B, V − 1, 9] (EquiCaps 3×3 variant)."""
    latents = _latents(inputs, "rotation_matrix")
    return relative_matrix(latents).flatten(-2).to(inputs.latents.dtype)  # type: ignore[union-attr]


@register_action("rotation_euler")
def rotation_euler(inputs: ActionInputs) -> Tensor:
    """``as_euler('xyz')`` of R_iᵀ R_{i+1}, [B, V − 1, 3] (SIE eval ``--experience euler``)."""
    latents = _latents(inputs, "rotation_euler")
    return matrix_to_euler_xyz(relative_matrix(latents)).to(inputs.latents.dtype)  # type: ignore[union-attr]


@register_action("color_delta")
def color_delta(inputs: ActionInputs) -> Tensor:
    """[Δ floor hue, Δ spot hue], not wrapped (datasets.md §1.6), [B, V − 1, 2]."""
    latents = _latents(inputs, "color_delta")
    colors = latents[..., list(COLOR_INDICES)]
    before, after = _consecutive(colors)
    return (after - before).to(inputs.latents.dtype)  # type: ignore[union-attr]


@register_action("rot_color")
def rot_color(inputs: ActionInputs) -> Tensor:
    """[quaternion, Δ floor hue, Δ spot hue], [B, V − 1, 6] (SIE RotColor, seq-JEPA)."""
    return torch.cat([rotation_quat(inputs), color_delta(inputs)], dim=-1)


@register_action("all_latents")
def all_latents(inputs: ActionInputs) -> Tensor:
    """[quaternion, Δ latents 3, 4, 5, 6] unwrapped, [B, V − 1, 8] (seq-JEPA 'all')."""
    latents = _latents(inputs, "all_latents")
    before, after = _consecutive(latents[..., list(OTHER_LATENTS)])
    deltas = (after - before).to(inputs.latents.dtype)  # type: ignore[union-attr]
    return torch.cat([rotation_quat(inputs), deltas], dim=-1)


@register_action("translation_object")
def translation_object(inputs: ActionInputs) -> Tensor:
    """Object-frame translation t_{i+1} − t_i, [B, V − 1, 3] (3DIEBench-T, datasets.md §2)."""
    latents = _latents(inputs, "translation_object", min_dim=10)
    before, after = _consecutive(latents[..., TRANSLATION])
    return (after - before).to(inputs.latents.dtype)  # type: ignore[union-attr]


@register_action("translation_base")
def translation_base(inputs: ActionInputs) -> Tensor:
    """Base-frame translation R_{i+1} t_{i+1} − R_i t_i, [B, V − 1, 3] (datasets.md §2).

    The displacement of the object's centre visible in the image (the generator's object
    basis is R·T(t), so the centre sits at R·t).
    """
    latents = _latents(inputs, "translation_base", min_dim=10)
    rot = euler_xyz_to_matrix(latents[..., ROTATION])
    centre = (rot @ latents[..., TRANSLATION].unsqueeze(-1)).squeeze(-1)
    before, after = _consecutive(centre)
    return (after - before).to(inputs.latents.dtype)  # type: ignore[union-attr]


def rigid_transform(latents: Tensor, frame: str) -> Tensor:
    """The 4×4 object transform of every view, [..., 4, 4] float64 (datasets.md §2).

    ``object``: M = T(t)·R = [[R, t], [0, 1]] (EquiCaps ``get_object_frame_matrix``);
    ``base``: M = R·T(t) = [[R, R t], [0, 1]] (``get_base_frame_matrix``, the generator's
    composition).
    """
    rot = euler_xyz_to_matrix(latents[..., ROTATION].double())
    t = latents[..., TRANSLATION].double().unsqueeze(-1)
    if frame == "object":
        column = t
    elif frame == "base":
        column = rot @ t
    else:
        raise ValueError(f"frame must be 'object' or 'base', got {frame!r}")
    top = torch.cat([rot, column], dim=-1)  # [..., 3, 4]
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def relative_transform(latents: Tensor, frame: str) -> Tensor:
    """M_i⁻¹ M_{i+1} along the views, [B, V − 1, 4, 4] float64. The inverse of the rigid
    [[R, c], [0, 1]] is [[Rᵀ, −Rᵀc], [0, 1]]."""
    m = rigid_transform(latents, frame)
    m_from, m_to = _consecutive(m)
    rot_t = m_from[..., :3, :3].transpose(-1, -2)
    inverse = torch.zeros_like(m_from)
    inverse[..., :3, :3] = rot_t
    inverse[..., :3, 3:] = -rot_t @ m_from[..., :3, 3:]
    inverse[..., 3, 3] = 1.0
    return inverse @ m_to


@register_action("transform_object")
def transform_object(inputs: ActionInputs) -> Tensor:
    """Relative object-frame transform M_i⁻¹ M_{i+1}, M = T(t)·R, row-major [B, V − 1, 16]
    (EquiCaps 4×4, 3DIEBench-T; datasets.md §2)."""
    latents = _latents(inputs, "transform_object", min_dim=10)
    rel = relative_transform(latents, "object")
    return rel.flatten(-2).to(inputs.latents.dtype)  # type: ignore[union-attr]


@register_action("transform_base")
def transform_base(inputs: ActionInputs) -> Tensor:
    """Relative base-frame transform M_i⁻¹ M_{i+1}, M = R·T(t), row-major [B, V − 1, 16]
    (EquiCaps 4×4 with ``--base-frame``; datasets.md §2)."""
    latents = _latents(inputs, "transform_base", min_dim=10)
    rel = relative_transform(latents, "base")
    return rel.flatten(-2).to(inputs.latents.dtype)  # type: ignore[union-attr]
