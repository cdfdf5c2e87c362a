"""The PyTorch side: models, training, checkpoints and the reference multi-hypothesis sampler."""
