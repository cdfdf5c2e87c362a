"""The PyTorch side: models, their training, and checkpoints."""
