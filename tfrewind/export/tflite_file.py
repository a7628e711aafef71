"""Read a ``.tflite`` back: which ops it uses and how many zeros its weight tensors keep.

Why parse the file instead of trusting the Keras weights: the question is what the *device*
gets. Batch-norm folding, float16 casts and int8 rounding all rewrite weights, and sparse encoding
stores only the non-zero values. We read the flatbuffer with the schema that ships with
ai_edge_litert, follow each CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED weight input back
through DENSIFY / DEQUANTIZE to its constant buffer, and count:

* dense-encoded tensors: the zeros in the decoded values (int8 0 is 0.0: weight zero points are 0);
* sparse-encoded tensors: the stored values (the buffer holds only those) against the dense size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ai_edge_litert import schema_py_generated as schema

WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_PASS_THROUGH = ("DENSIFY", "DEQUANTIZE")
_OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
_DTYPES = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16,
           schema.TensorType.INT8: np.int8, schema.TensorType.UINT8: np.uint8,
           schema.TensorType.INT32: np.int32}


@dataclass
class WeightTensor:
    op: str
    tensor: str
    """Tensor name as the converter wrote it (contains the Keras layer name, e.g. ``model/conv1/Conv2D``)."""
    dtype: str
    size: int
    nonzero: int
    sparse_encoded: bool

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / self.size if self.size else 0.0


@dataclass
class TfliteInfo:
    op_counts: dict[str, int] = field(default_factory=dict)
    flex_ops: list[str] = field(default_factory=list)
    custom_ops: list[str] = field(default_factory=list)
    weights: list[WeightTensor] = field(default_factory=list)
    output_step: float | None = None
    """Quantization scale of the (first) output as computed: the finest difference the file can show."""

    @property
    def sparse_tensors(self) -> int:
        return sum(w.sparse_encoded for w in self.weights)


def inspect_tflite(content: bytes) -> TfliteInfo:
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    info = TfliteInfo()
    names = [_op_name(code) for code in model.operatorCodes]
    for graph in model.subgraphs:
        producers = {out: op for op in graph.operators for out in op.outputs}
        for op in graph.operators:
            name = names[op.opcodeIndex]
            info.op_counts[name] = info.op_counts.get(name, 0) + 1
            if name.startswith("Flex"):
                info.flex_ops.append(name[len("Flex"):])
            elif name.startswith("CUSTOM:"):
                info.custom_ops.append(name[len("CUSTOM:"):])
            if name in WEIGHT_OPS and len(op.inputs) > 1:
                index = _constant_source(op.inputs[1], producers, names)
                info.weights.append(_weight(model, graph, index, name))
    info.output_step = _output_step(model, names)
    info.flex_ops = sorted(set(info.flex_ops))
    info.custom_ops = sorted(set(info.custom_ops))
    return info


def match_layer(tensor_name: str, layer_names: list[str]) -> str | None:
    """The Keras layer a weight tensor came from: the longest ``/name/`` segment in its name.

    Fused tensors are named ``model/relu1/Relu;model/conv1/Conv2D``; only Conv/Dense layer names
    are offered, so the activation part cannot match.
    """
    hits = [n for n in layer_names if f"/{n}/" in f"/{tensor_name}/" or tensor_name.endswith(f"/{n}")]
    return max(hits, key=len) if hits else None


def _op_name(code: schema.OperatorCodeT) -> str:
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = (code.customCode or b"").decode()
        return custom if custom.startswith("Flex") else f"CUSTOM:{custom}"
    return _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def _constant_source(index: int, producers: dict, names: list[str]) -> int:
    """Follow DENSIFY/DEQUANTIZE back to the constant tensor that holds the weights in the file."""
    while index in producers and names[producers[index].opcodeIndex] in _PASS_THROUGH:
        index = producers[index].inputs[0]
    return index


def _output_step(model: schema.ModelT, names: list[str]) -> float | None:
    """The int8 scale of the first output, or of the tensor a final DEQUANTIZE turns into it.

    Why: full-integer files keep a float interface, so the output tensor itself is float32; its
    resolution is that of the quantized tensor behind the DEQUANTIZE (1/256 after a softmax).
    """
    graph = model.subgraphs[0]
    if graph.outputs is None or not len(graph.outputs):
        return None
    index = int(graph.outputs[0])
    producer = next((op for op in graph.operators if index in op.outputs), None)
    if producer is not None and names[producer.opcodeIndex] == "DEQUANTIZE":
        index = int(producer.inputs[0])
    quant = graph.tensors[index].quantization
    scales = None if quant is None else quant.scale
    return float(scales[0]) if scales is not None and len(scales) == 1 else None


def _weight(model: schema.ModelT, graph: schema.SubGraphT, index: int, op: str) -> WeightTensor:
    tensor = graph.tensors[index]
    size = int(np.prod(tensor.shape)) if tensor.shape is not None else 0
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    dtype = _DTYPES.get(tensor.type, np.uint8)
    if data is None:  # not a constant (weights computed at run time): nothing to count
        return WeightTensor(op, tensor.name.decode(), np.dtype(dtype).name, size, size, False)
    values = np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=dtype)
    return WeightTensor(op, tensor.name.decode(), np.dtype(dtype).name, size,
                        int(np.count_nonzero(values)), tensor.sparsity is not None)
