"""Parametric object families: one seeded generator per class, composed of SDF primitives.

Each family draws its proportions and optional parts from a ``numpy.random.Generator``,
so objects of one class vary (lengths, thicknesses, angles, optional parts) while
staying recognisable. Objects are built z-up, front along +x (as a ShapeNet model after
BlenderProc's import), then normalised to a bounding-box diagonal of 1 about the box
centre. All but ``bottle`` lack rotational symmetry, so a rotation is recoverable from
the image (datasets.md §6.3); ``bottle`` is kept as the deliberately symmetric class.

Synset ids are the real ShapeNetCore v2 ids of the same categories, so labels (rank of
the synset among those rendered) and class names read like the real benchmark's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sslequi.data.render.sdf import Kind, Primitive, normalize_primitives

Vec = Sequence[float]

# --- primitive builders ----------------------------------------------------------------


def rotation_xyz(x: float = 0.0, y: float = 0.0, z: float = 0.0) -> np.ndarray:
    """R_z(z)·R_y(y)·R_x(x) (extrinsic x, y, z)."""
    cx, sx, cy, sy, cz, sz = (
        math.cos(x),
        math.sin(x),
        math.cos(y),
        math.sin(y),
        math.cos(z),
        math.sin(z),
    )
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def frame_along(axis: Vec) -> np.ndarray:
    """A rotation whose third column (local z) is the unit vector along ``axis``."""
    z = np.asarray(axis, dtype=np.float64)
    z = z / np.linalg.norm(z)
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def _c(v: Vec) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


def box(
    center: Vec, half: Vec, rounding: float = 0.0, rot: np.ndarray | None = None,
    mat: int = 0, carve: bool = False,
) -> Primitive:  # fmt: skip
    rounding = min(rounding, 0.95 * min(half))
    return Primitive(Kind.BOX, _c(center), np.eye(3) if rot is None else rot,
                     (*map(float, half), float(rounding)), mat, carve)  # fmt: skip


def capsule(a: Vec, b: Vec, radius: float, mat: int = 0) -> Primitive:
    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    half = float(np.linalg.norm(b_ - a_)) / 2
    return Primitive(Kind.CAPSULE, _c((a_ + b_) / 2), frame_along(b_ - a_), (half, radius), mat)


def cylinder(
    a: Vec, b: Vec, radius: float, rounding: float = 0.0, mat: int = 0, carve: bool = False
) -> Primitive:
    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    half = float(np.linalg.norm(b_ - a_)) / 2
    rounding = min(rounding, 0.95 * min(radius, half))
    return Primitive(Kind.CYLINDER, _c((a_ + b_) / 2), frame_along(b_ - a_),
                     (radius, half, rounding), mat, carve)  # fmt: skip


def ellipsoid(
    center: Vec, radii: Vec, rot: np.ndarray | None = None, mat: int = 0, carve: bool = False
) -> Primitive:
    return Primitive(Kind.ELLIPSOID, _c(center), np.eye(3) if rot is None else rot,
                     tuple(map(float, radii)), mat, carve)  # fmt: skip


def torus(center: Vec, normal: Vec, major: float, minor: float, mat: int = 0) -> Primitive:
    return Primitive(Kind.TORUS, _c(center), frame_along(normal), (major, minor), mat)


def cone(
    a: Vec, b: Vec, radius_a: float, radius_b: float, mat: int = 0, carve: bool = False
) -> Primitive:
    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    height = float(np.linalg.norm(b_ - a_))
    # keep the round cone well defined: |r_a − r_b| < h
    radius_b = float(np.clip(radius_b, radius_a - 0.95 * height, radius_a + 0.95 * height))
    return Primitive(Kind.CONE, _c((a_ + b_) / 2), frame_along(b_ - a_),
                     (radius_a, radius_b, height), mat, carve)  # fmt: skip


# --- families ----------------------------------------------------------------------------

Generator = np.random.Generator


def _u(rng: Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def airplane(rng: Generator) -> list[Primitive]:
    length, radius = _u(rng, 1.6, 2.4), _u(rng, 0.09, 0.14)
    span, chord, sweep = _u(rng, 1.4, 2.2), _u(rng, 0.22, 0.38), _u(rng, 0.0, 0.6)
    wing_x, wing_z = _u(rng, -0.05, 0.2) * length, _u(rng, -0.6, 0.6) * radius
    prims = [capsule((-length / 2, 0, 0), (length / 2, 0, 0), radius)]
    prims.append(ellipsoid((length / 2, 0, 0), (radius * 2.2, radius, radius)))  # nose
    for side in (1, -1):
        direction = np.array([-math.sin(sweep), side * math.cos(sweep), 0.0])
        centre = np.array([wing_x, 0, wing_z]) + direction * span / 4
        prims.append(box(centre, (chord / 2, span / 4, 0.025), 0.01, rotation_xyz(z=side * sweep)))
    tail_h, tail_c = _u(rng, 0.25, 0.42), _u(rng, 0.18, 0.3)
    tail_x = -length / 2 + tail_c / 2
    prims.append(box((tail_x - 0.05, 0, radius + tail_h / 2), (tail_c / 2, 0.02, tail_h / 2),
                     0.01, rotation_xyz(y=0.35), mat=1))  # fmt: skip
    stab = _u(rng, 0.35, 0.7)
    prims.append(box((tail_x, 0, 0), (tail_c / 2.5, stab / 2, 0.018), 0.008, mat=1))
    if rng.random() < 0.6:
        for side in (1, -1):
            y = side * span * _u(rng, 0.18, 0.3)
            x0 = wing_x - y * side * math.sin(sweep) * 0.5
            prims.append(cylinder((x0 + 0.2, y, wing_z - radius), (x0 - 0.2, y, wing_z - radius),
                                  0.07, 0.02, mat=2))  # fmt: skip
    return prims


def bench(rng: Generator) -> list[Primitive]:
    length, depth, height = _u(rng, 1.6, 2.2), _u(rng, 0.45, 0.6), _u(rng, 0.45, 0.55)
    slats = int(rng.integers(2, 5))
    prims = []
    for i in range(slats):
        x = -depth / 2 + (i + 0.5) * depth / slats
        prims.append(box((x, 0, height), (depth / slats * 0.42, length / 2, 0.025), 0.01))
    leg_w = _u(rng, 0.04, 0.08)
    for y in (-1, 1):
        prims.append(box((0, y * (length / 2 - 0.12), height / 2), (depth / 2, leg_w, height / 2),
                         0.01, mat=2))  # fmt: skip
    back_h, tilt = _u(rng, 0.3, 0.5), _u(rng, 0.05, 0.3)
    prims.append(box((-depth / 2 - 0.02, 0, height + 0.1 + back_h / 2), (0.025, length / 2, back_h / 2),
                     0.01, rotation_xyz(y=-tilt)))  # fmt: skip
    for y in (-1, 1):
        prims.append(box((-depth / 2, y * (length / 2 - 0.12), height + back_h / 2),
                         (0.025, leg_w, back_h / 2 + 0.05), 0.01, mat=2))  # fmt: skip
    if rng.random() < 0.5:
        for y in (-1, 1):
            prims.append(box((0, y * (length / 2 - 0.12), height + 0.22), (depth / 2, 0.03, 0.02),
                             0.01, mat=2))  # fmt: skip
    return prims


def bottle(rng: Generator) -> list[Primitive]:
    radius, height = _u(rng, 0.22, 0.35), _u(rng, 0.7, 1.2)
    neck_r, neck_h = _u(rng, 0.07, 0.11), _u(rng, 0.15, 0.35)
    shoulder = _u(rng, 0.1, 0.3)
    return [
        cylinder((0, 0, 0), (0, 0, height), radius, 0.04),
        cone((0, 0, height - 0.01), (0, 0, height + shoulder), radius * 0.98, neck_r),
        cylinder((0, 0, height + shoulder), (0, 0, height + shoulder + neck_h), neck_r),
        cylinder(
            (0, 0, height + shoulder + neck_h),
            (0, 0, height + shoulder + neck_h + 0.08),
            neck_r * 1.15,
            0.01,
            mat=1,
        ),  # fmt: skip
        cylinder((0, 0, height * 0.35), (0, 0, height * 0.7), radius * 1.01, mat=1),  # label
    ]


def car(rng: Generator) -> list[Primitive]:
    length, width, body_h = _u(rng, 1.8, 2.4), _u(rng, 0.8, 1.0), _u(rng, 0.25, 0.4)
    wheel_r = _u(rng, 0.15, 0.21)
    z0 = wheel_r * 0.9
    prims = [box((0, 0, z0 + body_h / 2), (length / 2, width / 2, body_h / 2), 0.08)]
    cabin_l, cabin_h = _u(rng, 0.4, 0.6) * length, _u(rng, 0.2, 0.34)
    cabin_x = _u(rng, -0.22, 0.0) * length
    prims.append(box((cabin_x, 0, z0 + body_h + cabin_h / 2 - 0.03),
                     (cabin_l / 2, width / 2 * 0.88, cabin_h / 2), 0.07, mat=1))  # fmt: skip
    inset = _u(rng, 0.28, 0.4)
    for x in (length / 2 - inset, -length / 2 + inset):
        for y in (-1, 1):
            prims.append(cylinder((x, y * width / 2 - 0.08, wheel_r), (x, y * width / 2 + 0.08, wheel_r),
                                  wheel_r, 0.03, mat=2))  # fmt: skip
    if rng.random() < 0.4:
        prims.append(
            box((-length / 2 + 0.08, 0, z0 + body_h + 0.1), (0.06, width / 2, 0.02), 0.01, mat=2)
        )
    return prims


def chair(rng: Generator) -> list[Primitive]:
    width, depth, seat_h = _u(rng, 0.8, 1.1), _u(rng, 0.75, 1.0), _u(rng, 0.8, 1.0)
    prims = [box((0, 0, seat_h), (depth / 2, width / 2, 0.045), 0.02)]
    leg = _u(rng, 0.035, 0.065)
    round_legs = rng.random() < 0.4
    for x in (-1, 1):
        for y in (-1, 1):
            foot = (x * (depth / 2 - 0.07), y * (width / 2 - 0.07), 0.0)
            top = (foot[0], foot[1], seat_h)
            if round_legs:
                prims.append(cylinder(foot, top, leg, mat=1))
            else:
                prims.append(box((foot[0], foot[1], seat_h / 2), (leg, leg, seat_h / 2), mat=1))
    back_h, tilt = _u(rng, 0.7, 1.1), _u(rng, 0.0, 0.28)
    back_c = (-depth / 2 + 0.04 - math.sin(tilt) * back_h / 2, 0, seat_h + back_h / 2)
    if rng.random() < 0.35:  # slatted back
        for y in np.linspace(-width / 2 + 0.06, width / 2 - 0.06, 4):
            prims.append(
                box(
                    (back_c[0], y, back_c[2]), (0.03, 0.03, back_h / 2), 0.01, rotation_xyz(y=-tilt)
                )
            )
        prims.append(box((back_c[0] - math.sin(tilt) * back_h / 2, 0, seat_h + back_h),
                         (0.04, width / 2, 0.06), 0.02, rotation_xyz(y=-tilt)))  # fmt: skip
    else:
        prims.append(box(back_c, (0.04, width / 2, back_h / 2), 0.03, rotation_xyz(y=-tilt)))
    if rng.random() < 0.4:
        for y in (-1, 1):
            prims.append(
                box((0, y * width / 2, seat_h + 0.28), (depth / 2, 0.04, 0.03), 0.02, mat=1)
            )
            prims.append(
                box((depth / 2 - 0.08, y * width / 2, seat_h + 0.14), (0.03, 0.03, 0.14), mat=1)
            )
    return prims


def guitar(rng: Generator) -> list[Primitive]:
    lower, upper, depth = _u(rng, 0.38, 0.5), _u(rng, 0.27, 0.36), _u(rng, 0.08, 0.14)
    neck_l = _u(rng, 1.0, 1.3)
    waist_z = lower * 0.9
    prims = [
        ellipsoid((0, 0, 0), (lower, depth, lower * 1.05)),
        ellipsoid((0, 0, waist_z + upper * 0.7), (upper, depth, upper)),
        box((0, 0, waist_z + upper + neck_l / 2), (0.055, 0.035, neck_l / 2), 0.015, mat=1),
        box(
            (0, -0.02, waist_z + upper + neck_l + 0.12),
            (0.08, 0.03, 0.14),
            0.02,
            rotation_xyz(x=_u(rng, 0.15, 0.35)),
            mat=1,
        ),  # fmt: skip
        box((0, -depth * 0.95, -lower * 0.45), (0.14, 0.02, 0.03), 0.01, mat=2),  # bridge
        cylinder(
            (0, -depth * 1.2, waist_z * 0.55),
            (0, -depth * 0.6, waist_z * 0.55),
            0.1,
            mat=2,
            carve=True,
        ),  # sound hole  # fmt: skip
    ]
    if rng.random() < 0.5:  # cutaway on one side of the upper bout
        prims.append(ellipsoid((upper * 0.95, 0, waist_z + upper * 1.1), (upper * 0.5, depth * 2, upper * 0.6),
                               carve=True))  # fmt: skip
    return prims


def lamp(rng: Generator) -> list[Primitive]:
    base_r = _u(rng, 0.2, 0.32)
    arm1, arm2 = _u(rng, 0.6, 0.9), _u(rng, 0.5, 0.8)
    lean1, lean2 = _u(rng, 0.1, 0.5), _u(rng, 0.8, 1.6)
    base_x = _u(rng, -0.1, 0.1)
    prims = [cylinder((base_x, 0, 0), (base_x, 0, 0.07), base_r, 0.02, mat=1)]
    elbow = np.array([base_x + math.sin(lean1) * arm1, 0, 0.07 + math.cos(lean1) * arm1])
    head = elbow + np.array([math.sin(lean2) * arm2, 0, math.cos(lean2) * arm2])
    prims.append(capsule((base_x, 0, 0.07), elbow, 0.03))
    prims.append(capsule(elbow, head, 0.03))
    prims.append(ellipsoid(elbow, (0.05, 0.05, 0.05), mat=1))
    aim = np.array([_u(rng, 0.2, 0.8), 0, -1.0])
    aim /= np.linalg.norm(aim)
    shade_h, shade_r = _u(rng, 0.22, 0.35), _u(rng, 0.16, 0.26)
    mouth = head + aim * shade_h
    prims.append(cone(head, mouth, 0.06, shade_r, mat=1))
    prims.append(cone(head + aim * 0.05, mouth + aim * 0.05, 0.03, shade_r - 0.025, carve=True))
    return prims


def laptop(rng: Generator) -> list[Primitive]:
    width, depth, thick = _u(rng, 1.2, 1.5), _u(rng, 0.8, 1.0), _u(rng, 0.04, 0.07)
    opening = math.radians(_u(rng, 95, 130))
    screen_h = depth * _u(rng, 0.85, 1.0)
    hinge = np.array([-depth / 2, 0, thick])
    direction = np.array([math.cos(opening), 0, math.sin(opening)])
    normal = np.array([math.sin(opening), 0, -math.cos(opening)])
    rot = np.stack([normal, [0.0, 1.0, 0.0], direction], axis=1)
    prims = [
        box((0, 0, thick / 2), (depth / 2, width / 2, thick / 2), 0.015),
        box(hinge + direction * screen_h / 2, (0.02, width / 2, screen_h / 2), 0.012, rot),
        box(
            hinge + direction * screen_h / 2 + normal * 0.02,
            (0.004, width / 2 - 0.05, screen_h / 2 - 0.05),
            0.0,
            rot,
            mat=2,
        ),  # display  # fmt: skip
        box((0.08, 0, thick), (depth * 0.28, width / 2 - 0.1, 0.008), 0.0, mat=2),  # keyboard
        box((depth / 2 - 0.15, 0, thick), (0.1, 0.16, 0.004), 0.0, mat=1),  # touchpad
    ]
    return prims


def mug(rng: Generator) -> list[Primitive]:
    radius, height, wall = _u(rng, 0.3, 0.45), _u(rng, 0.6, 1.05), _u(rng, 0.035, 0.06)
    handle_r = _u(rng, 0.16, 0.28) * height
    handle_z = _u(rng, 0.42, 0.55) * height
    return [
        cylinder((0, 0, 0), (0, 0, height), radius, 0.02),
        cylinder((0, 0, wall), (0, 0, height + 0.2), radius - wall, 0.02, carve=True),
        torus(
            (radius + handle_r * 0.45, 0, handle_z),
            (0, 1, 0),
            handle_r,
            _u(rng, 0.035, 0.06),
            mat=int(rng.integers(0, 2)),
        ),  # fmt: skip
    ]


def pistol(rng: Generator) -> list[Primitive]:
    length, height = _u(rng, 0.9, 1.2), _u(rng, 0.14, 0.2)
    grip_l, grip_tilt = _u(rng, 0.45, 0.6), _u(rng, 0.15, 0.4)
    z = grip_l
    prims = [
        box((0, 0, z), (length / 2, 0.06, height / 2), 0.02),
        cylinder(
            (length / 2 - 0.02, 0, z + 0.02),
            (length / 2 + _u(rng, 0.0, 0.15), 0, z + 0.02),
            0.035,
            mat=2,
        ),
    ]
    grip_top = np.array([-length / 2 + 0.15, 0, z - height / 2])
    grip_dir = np.array([-math.sin(grip_tilt), 0, -math.cos(grip_tilt)])
    prims.append(box(grip_top + grip_dir * grip_l / 2, (0.09, 0.065, grip_l / 2), 0.03,
                     rotation_xyz(y=grip_tilt), mat=1))  # fmt: skip
    prims.append(
        torus((-length / 2 + 0.38, 0, z - height / 2 - 0.06), (0, 1, 0), 0.075, 0.015, mat=2)
    )
    if rng.random() < 0.4:
        prims.append(
            box((-length / 2 + 0.12, 0, z + height / 2 + 0.02), (0.03, 0.02, 0.03), mat=2)
        )  # sight
    return prims


def rifle(rng: Generator) -> list[Primitive]:
    length = _u(rng, 2.4, 3.0)
    recv_l = _u(rng, 0.5, 0.7)
    prims = [
        box((0, 0, 0), (recv_l / 2, 0.05, 0.09), 0.02),
        cylinder((recv_l / 2, 0, 0.03), (length / 2, 0, 0.03), _u(rng, 0.022, 0.035), mat=2),
        box((recv_l / 2 + 0.3, 0, 0.0), (0.3, 0.045, 0.06), 0.02, mat=1),  # handguard
    ]
    stock_l, drop = _u(rng, 0.6, 0.8), _u(rng, 0.05, 0.2)
    stock_c = np.array([-recv_l / 2 - stock_l / 2, 0, -0.05 - drop / 2])
    prims.append(box(stock_c, (stock_l / 2, 0.05, 0.12), 0.03, rotation_xyz(y=drop), mat=1))
    prims.append(
        box((-recv_l / 2 + 0.08, 0, -0.2), (0.05, 0.04, 0.12), 0.02, rotation_xyz(y=0.3), mat=1)
    )
    if rng.random() < 0.7:
        prims.append(box((0.1, 0, -0.2), (0.06, 0.035, _u(rng, 0.1, 0.2)), 0.01,
                         rotation_xyz(y=-0.25), mat=2))  # magazine  # fmt: skip
    if rng.random() < 0.5:
        prims.append(cylinder((-0.2, 0, 0.18), (0.25, 0, 0.18), 0.045, 0.01, mat=2))  # scope
    return prims


def sofa(rng: Generator) -> list[Primitive]:
    length, depth = _u(rng, 1.8, 2.6), _u(rng, 0.8, 1.0)
    seat_h, back_h, arm_h = _u(rng, 0.35, 0.45), _u(rng, 0.35, 0.55), _u(rng, 0.15, 0.3)
    prims = [
        box((0, 0, seat_h / 2), (depth / 2, length / 2, seat_h / 2), 0.05),
        box((-depth / 2 + 0.12, 0, seat_h + back_h / 2), (0.12, length / 2, back_h / 2), 0.06),
    ]
    for y in (-1, 1):
        prims.append(
            box(
                (0, y * (length / 2 - 0.1), seat_h + arm_h / 2),
                (depth / 2, 0.1, arm_h / 2 + 0.03),
                0.05,
            )
        )
    cushions = int(rng.integers(2, 4))
    inner = length - 0.4
    for i in range(cushions):
        y = -inner / 2 + (i + 0.5) * inner / cushions
        prims.append(box((0.06, y, seat_h + 0.05), (depth / 2 - 0.14, inner / cushions / 2 - 0.01, 0.06),
                         0.04, mat=1))  # fmt: skip
    if rng.random() < 0.5:  # chaise on one side
        ext = _u(rng, 0.5, 0.8)
        y = (length / 2 - 0.5) * (1 if rng.random() < 0.5 else -1)
        prims.append(box((depth / 2 + ext / 2, y, seat_h / 2), (ext / 2, 0.4, seat_h / 2), 0.05))
    return prims


def table(rng: Generator) -> list[Primitive]:
    length, width, height = _u(rng, 1.4, 2.0), _u(rng, 0.7, 1.0), _u(rng, 0.9, 1.2)
    top = _u(rng, 0.04, 0.08)
    prims = [box((0, 0, height), (length / 2, width / 2, top / 2), 0.015)]
    if rng.random() < 0.7:
        leg = _u(rng, 0.035, 0.07)
        for x in (-1, 1):
            for y in (-1, 1):
                prims.append(box((x * (length / 2 - 0.08), y * (width / 2 - 0.08), height / 2),
                                 (leg, leg, height / 2), mat=1))  # fmt: skip
    else:  # trestle ends with a stretcher
        for x in (-1, 1):
            prims.append(
                box(
                    (x * (length / 2 - 0.12), 0, height / 2),
                    (0.04, width / 2 - 0.05, height / 2),
                    mat=1,
                )
            )
        prims.append(box((0, 0, height * 0.25), (length / 2 - 0.12, 0.03, 0.03), mat=1))
    # drawer unit under one end: breaks the table's 180° symmetry
    unit_l = _u(rng, 0.25, 0.45) * length
    side = 1 if rng.random() < 0.5 else -1
    prims.append(box((side * (length / 2 - unit_l / 2 - 0.1), -width * 0.1, height - 0.15),
                     (unit_l / 2, width * 0.35, 0.12), 0.01, mat=2))  # fmt: skip
    return prims


def vessel(rng: Generator) -> list[Primitive]:
    length, width, hull_h = _u(rng, 2.0, 2.8), _u(rng, 0.5, 0.8), _u(rng, 0.25, 0.4)
    bow = _u(rng, 0.3, 0.45) * length
    prims = [
        ellipsoid((-0.1 * length, 0, 0), (length * 0.42, width / 2, hull_h)),
        cone((length * 0.2, 0, 0.05), (length * 0.2 + bow, 0, 0.12), width / 2 * 0.95, 0.02),
        box((0, 0, 0.05), (length * 0.42, width / 2 * 0.9, 0.04), 0.02, mat=1),  # deck
    ]
    cabin_x = _u(rng, -0.3, -0.05) * length
    cabin_l, cabin_h = _u(rng, 0.15, 0.3) * length, _u(rng, 0.15, 0.3)
    prims.append(
        box((cabin_x, 0, 0.09 + cabin_h / 2), (cabin_l / 2, width * 0.3, cabin_h / 2), 0.03, mat=1)
    )
    if rng.random() < 0.5:  # sailing boat: mast and a sail
        mast_h = _u(rng, 0.8, 1.3)
        mast_x = cabin_x + cabin_l / 2 + 0.15
        prims.append(capsule((mast_x, 0, 0.1), (mast_x, 0, 0.1 + mast_h), 0.02, mat=2))
        prims.append(box((mast_x - 0.25, 0, 0.1 + mast_h * 0.55), (0.24, 0.008, mast_h * 0.4), 0.0,
                         rotation_xyz(y=0.18), mat=1))  # fmt: skip
    else:  # ship: funnel
        prims.append(cylinder((cabin_x, 0, 0.09 + cabin_h), (cabin_x - 0.05, 0, 0.09 + cabin_h + 0.25),
                              0.08, 0.01, mat=2))  # fmt: skip
    return prims


# --- the class table -----------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectClass:
    """One rendered class: its ShapeNet synset id, name and generator."""

    synset: str
    name: str
    build: Callable[[Generator], list[Primitive]]
    symmetric: bool = False


CLASSES: tuple[ObjectClass, ...] = tuple(
    sorted(
        [
            ObjectClass("02691156", "airplane", airplane),
            ObjectClass("02828884", "bench", bench),
            ObjectClass("02876657", "bottle", bottle, symmetric=True),
            ObjectClass("02958343", "car", car),
            ObjectClass("03001627", "chair", chair),
            ObjectClass("03467517", "guitar", guitar),
            ObjectClass("03636649", "lamp", lamp),
            ObjectClass("03642806", "laptop", laptop),
            ObjectClass("03797390", "mug", mug),
            ObjectClass("03948459", "pistol", pistol),
            ObjectClass("04090263", "rifle", rifle),
            ObjectClass("04256520", "sofa", sofa),
            ObjectClass("04379243", "table", table),
            ObjectClass("04530566", "vessel", vessel),
        ],
        key=lambda c: c.synset,
    )
)
CLASSES_BY_NAME: dict[str, ObjectClass] = {c.name: c for c in CLASSES}


def class_by_name(name: str) -> ObjectClass:
    if name not in CLASSES_BY_NAME:
        raise KeyError(f"unknown object class {name!r}; available: {sorted(CLASSES_BY_NAME)}")
    return CLASSES_BY_NAME[name]


def build_object(cls: ObjectClass, rng: Generator) -> list[Primitive]:
    """Draw one object of ``cls`` and normalise it (bounding-box diagonal 1, centred)."""
    return normalize_primitives(cls.build(rng))
