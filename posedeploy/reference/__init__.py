"""The PyTorch reference pipeline and what is measured with it: the multi-hypothesis sampler every
deployed backend is held to (sampler.py), ``posedeploy eval`` (evaluation.py), and the noise studies
that compare variance rules (noise_comparison.py, noise_oracle.py)."""
