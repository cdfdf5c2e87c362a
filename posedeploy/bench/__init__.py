"""posedeploy bench: latency, throughput and achieved FLOP rate of every backend on this machine,
against the PyTorch eager baseline and a peak measured in the same run."""
