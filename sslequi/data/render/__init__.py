"""The built-in 3D benchmark: a procedural SDF renderer writing the 3DIEBench layout.

- ``sdf``: primitives and batched signed-distance evaluation;
- ``shapes``: the seeded parametric object families (classes);
- ``scene``: latent sampling and the fixed 3DIEBench camera and lights;
- ``tracer``: the batched sphere tracer (CPU or GPU);
- ``generate``: presets, parallel generation and the on-disk layout.
"""
