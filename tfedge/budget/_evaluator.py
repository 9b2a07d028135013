"""Scoring a .tflite with some weight buffers replaced, in the stock interpreter, on
the caller's eval data or on inputs generated from the model's signature."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tfedge._checks import top1_accuracy
from tfedge.pack import generate_sample, interpreter_class
from tfedge.tflite import read, write

# Samples generated (from the input signature) when no eval data is given.
GENERATED_SAMPLES = 256


class Evaluator:
    """Runs the .tflite with some weight buffers replaced and scores its outputs."""

    def __init__(self, tflite: bytes, x, y, metric_fn: Callable, batch_size: int):
        self.model = read(tflite)
        self.x, self.y = x, y
        self.metric_fn = metric_fn
        self.batch_size = batch_size
        self.runs = 0

    def bytes_with(self, replaced: dict[int, np.ndarray]) -> bytes:
        saved = {b: self.model.buffers[b].data for b in replaced}
        try:
            for b, values in replaced.items():
                self.model.buffers[b].data = np.ascontiguousarray(values).view(np.uint8)
            return write(self.model)
        finally:
            for b, data in saved.items():
                self.model.buffers[b].data = data

    def outputs(self, tflite: bytes) -> np.ndarray:
        it = interpreter_class()(model_content=tflite, num_threads=1)
        inp = it.get_input_details()[0]
        out = it.get_output_details()[0]
        preds = []
        for start in range(0, len(self.x), self.batch_size):
            batch = self.x[start : start + self.batch_size].astype(inp["dtype"])
            if tuple(inp["shape"]) != batch.shape:
                it.resize_tensor_input(inp["index"], list(batch.shape))
                it.allocate_tensors()
                inp = it.get_input_details()[0]
                out = it.get_output_details()[0]
            elif start == 0:
                it.allocate_tensors()
            it.set_tensor(inp["index"], batch)
            it.invoke()
            preds.append(np.array(it.get_tensor(out["index"])))
        self.runs += 1
        return np.concatenate(preds)

    def score(self, replaced: dict[int, np.ndarray]) -> float:
        return float(self.metric_fn(self.y, self.outputs(self.bytes_with(replaced))))


def check_eval_data(eval_data) -> None:
    if not (isinstance(eval_data, (tuple, list)) and len(eval_data) == 2):
        raise ValueError(
            "Expected `eval_data` to be a tuple (x, y) of arrays. Received: "
            f"{type(eval_data).__name__}"
        )
    x, y = np.asarray(eval_data[0]), np.asarray(eval_data[1])
    if x.ndim == 0 or len(x) == 0 or len(x) != len(y):
        raise ValueError(
            "Expected `eval_data` = (x, y) with the same, non-zero number of samples. "
            f"Received: x of shape {x.shape}, y of shape {y.shape}"
        )


def eval_arrays(tflite: bytes, eval_data, seed: int, batch_size: int):
    if eval_data is not None:
        return np.asarray(eval_data[0]), np.asarray(eval_data[1])
    it = interpreter_class()(model_content=tflite, num_threads=1)
    details = it.get_input_details()
    if len(details) != 1:
        raise ValueError(
            f"Without `eval_data`, plan() needs a single-input model; this one has "
            f"{len(details)} inputs. Pass `eval_data`."
        )
    rng = np.random.default_rng(seed)
    x = np.concatenate(
        [generate_sample(details[0], rng) for _ in range(GENERATED_SAMPLES)]
    )
    ev = Evaluator(tflite, x, None, top1_accuracy, batch_size)
    out = ev.outputs(tflite)
    return x, np.argmax(out.reshape(len(x), -1), axis=-1)
