"""Where learned models run and how they load: devices (CUDA, onnxruntime providers, Ray's GPU
assignment), ONNX sessions, the YOLO runner, model files shipped in packages, native thread
pools, the aesthetic head."""
