"""Export: a posedeploy checkpoint -> ONNX graphs (avg, lifter, fused pipeline, mixed precision),
their manifest, and optionally a Triton Inference Server model repository."""
