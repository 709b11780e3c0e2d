"""The built-in 3D benchmark: a procedural SDF renderer writing the 3DIEBench layout.

    sslequi-data render3d --preset small --out data/render3d_small   # 12 × 40 × 12 @ 64 px
    sslequi-data check data/render3d_small
    sslequi-data preview data/render3d_small                         # contact sheet PNG
    sslequi-pretrain dataset=render3d_small method=sie ...

Modules:
- ``sdf``: primitives and batched signed-distance evaluation;
- ``shapes``: the seeded parametric object families (14 ShapeNet categories);
- ``scene``: latent sampling and the fixed 3DIEBench camera and lights (datasets.md §1.3);
- ``tracer``: the batched sphere tracer (CPU or GPU);
- ``generate``: presets, parallel generation and the on-disk layout (datasets.md §6.1).
"""
