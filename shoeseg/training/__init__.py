"""Two-stage training of the ResUNet: data, augmentation, loss, metrics, loop."""
