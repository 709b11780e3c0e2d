"""The one augmentation stack: batched ops on the device that record their parameters."""
