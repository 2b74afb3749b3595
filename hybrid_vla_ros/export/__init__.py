"""Export of a checkpoint's deployed parts to ONNX (and TensorRT engines, built by the
tensorrt inference backend from these graphs). Needs torch; see `export_checkpoint`."""
