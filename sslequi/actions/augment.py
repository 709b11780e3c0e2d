"""2D relative-action encodings computed from recorded augmentation parameters."""
