"""Run a shipped .tflite file as a user would: load it in LiteRT, resize to the batch, invoke."""

from __future__ import annotations

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def litert_logits(path, images: np.ndarray) -> np.ndarray:
    interp = Interpreter(model_path=str(path))
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], [len(images), *inp["shape"][1:]])
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], images.astype(np.float32))
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])
