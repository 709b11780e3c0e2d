"""Datasets: every dataset yields ``Sample`` items of uint8 images (no augmentation)."""
