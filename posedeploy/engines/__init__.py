"""TensorRT engines: build a serialized plan from the exported pipeline, with a manifest that
says what machine it is for. Imports TensorRT lazily; nothing here imports torch or onnx."""
