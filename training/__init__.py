"""Training: datasets into canonical events, session models, evaluation, ONNX export (torch is imported here only)."""
