"""3D relative-action encodings computed from 3DIEBench-family latents (datasets.md §1.10)."""
