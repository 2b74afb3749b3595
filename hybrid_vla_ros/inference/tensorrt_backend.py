"""The TensorRT backend: engines built from the exported ONNX graphs with the TensorRT
Python API, cached next to the checkpoint and rebuilt when a graph's checksum changes.

Needs the ``tensorrt`` package (NVIDIA's index, or JetPack on a Jetson) and
``cuda-python`` for device memory. Where either is missing, selecting this backend fails at
start-up with BackendUnavailable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from .backend import Backend, BackendUnavailable
from .manifest import ONNX_DIR, read_manifest, sha256_file
from .spec import PolicySpec

MAX_BATCH = 8


def _import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable(
            'the tensorrt backend needs the TensorRT Python package, which is not installed '
            'here (install it from NVIDIA, or use --backend onnxruntime)') from None
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise BackendUnavailable('the tensorrt backend needs cuda-python for device '
                                     'memory (pip install cuda-python)') from None
    return trt, cudart


def engine_path(onnx_path: Path, onnx_sha256: str, fp16: bool) -> Path:
    """Cache file of the engine built from `onnx_path`, keyed by the graph's checksum."""
    tag = 'fp16' if fp16 else 'fp32'
    return onnx_path.with_name(f'{onnx_path.stem}.{tag}.{onnx_sha256[:12]}.engine')


def build_engine(trt, onnx_path: Path, io: dict, fp16: bool, out: Path) -> bytes:
    """Parse `onnx_path` and build a serialized engine with one optimization profile
    (batch 1 .. MAX_BATCH, optimum 1); write it to `out` and return its bytes."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendUnavailable(f'TensorRT could not parse {onnx_path}: {errors}')
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for spec in io['inputs']:
        rest = tuple(spec['shape'][1:])
        profile.set_shape(spec['name'], (1, *rest), (1, *rest), (MAX_BATCH, *rest))
    config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise BackendUnavailable(f'TensorRT failed to build an engine from {onnx_path}')
    data = bytes(blob)
    tmp = out.with_suffix('.tmp')
    tmp.write_bytes(data)
    tmp.replace(out)
    return data


class TensorRTBackend(Backend):
    """Runs TensorRT engines on the GPU; inputs and outputs are host numpy arrays."""

    name = 'tensorrt'

    def __init__(self, checkpoint_dir, spec: PolicySpec, parts, threads: int = 1,
                 providers: Sequence[str] = ('cuda',), fp16: bool = False):
        trt, cudart = _import_tensorrt()
        weights = Path(checkpoint_dir) / 'model.safetensors'
        manifest = read_manifest(checkpoint_dir, spec.config_hash,
                                 sha256_file(weights) if weights.is_file() else None)
        super().__init__(checkpoint_dir, spec, {p: manifest['parts'][p] for p in parts})
        self.trt, self.cudart, self.fp16 = trt, cudart, fp16
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        onnx_dir = Path(checkpoint_dir) / ONNX_DIR
        self.engines, self.contexts = {}, {}
        for part in parts:
            entry = self.io[part]
            onnx_path = onnx_dir / entry['file']
            cache = engine_path(onnx_path, entry['sha256'], fp16)
            data = (cache.read_bytes() if cache.is_file()
                    else build_engine(trt, onnx_path, entry, fp16, cache))
            engine = self.runtime.deserialize_cuda_engine(data)
            self.engines[part] = engine
            self.contexts[part] = engine.create_execution_context()
        _, self.stream = cudart.cudaStreamCreate()

    def _check(self, result):
        err = result[0] if isinstance(result, tuple) else result
        if int(err) != 0:
            raise RuntimeError(f'CUDA error {err}')
        return result[1] if isinstance(result, tuple) and len(result) > 1 else None

    def _run(self, part: str, feeds: Dict[str, np.ndarray]) -> np.ndarray:
        cudart, ctx = self.cudart, self.contexts[part]
        kind = cudart.cudaMemcpyKind
        buffers = []
        try:
            for name, arr in feeds.items():
                arr = np.ascontiguousarray(arr)
                ctx.set_input_shape(name, arr.shape)
                ptr = self._check(cudart.cudaMalloc(arr.nbytes))
                buffers.append(ptr)
                self._check(cudart.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes,
                                                   kind.cudaMemcpyHostToDevice, self.stream))
                ctx.set_tensor_address(name, ptr)
            out_spec = self.io[part]['outputs'][0]
            out = np.empty(tuple(ctx.get_tensor_shape(out_spec['name'])), dtype=np.float32)
            out_ptr = self._check(cudart.cudaMalloc(out.nbytes))
            buffers.append(out_ptr)
            ctx.set_tensor_address(out_spec['name'], out_ptr)
            if not ctx.execute_async_v3(self.stream):
                raise RuntimeError(f'TensorRT execution of {part} failed')
            self._check(cudart.cudaMemcpyAsync(out.ctypes.data, out_ptr, out.nbytes,
                                               kind.cudaMemcpyDeviceToHost, self.stream))
            self._check(cudart.cudaStreamSynchronize(self.stream))
            return out
        finally:
            for ptr in buffers:
                cudart.cudaFree(ptr)

    def describe(self) -> str:
        """Backend and precision."""
        return f'tensorrt[{"fp16" if self.fp16 else "fp32"}]'
