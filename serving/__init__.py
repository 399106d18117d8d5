"""The gRPC scorer: ONNX Runtime session model, rules and fallbacks behind streamrec.v1.Recommender."""
