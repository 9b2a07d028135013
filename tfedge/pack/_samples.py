"""Representative data in the forms people already have, as model input samples.

`make_samples` turns `representative_data` into `samples[entry][i][input]` arrays for
`_verify.ModelRunner`, checking every array's shape and dtype against the model's
inputs first (so that a wrong shape is reported here, in plain numbers, and never
reaches XNNPack's reshape). The accepted forms and the rules that tell them apart:

1. `None`: inputs generated from the input signature (seeded).
2. A callable, TFLite's `representative_dataset` convention: called with no argument,
   it returns an iterator whose items are one model call each, as TFLiteConverter
   reads them: a list or tuple of arrays in input order (`yield [x]`), or a dict keyed
   by input name. A tuple here is *inputs*, never `(x, y)`.
3. An array (numpy, or anything numpy can read: a tf.Tensor, a jax array): a batch of
   samples of a single-input model, split along the first axis. An array with one
   axis fewer than the input is one sample.
4. A dict `{name: array}`: a batch per input, keyed by input names exactly (the
   tensor name such as `serving_default_x:0`, or the signature's input name `x`).
   Every input must be named and no other key is allowed; the error lists the names.
   For a model with several signatures, a dict keyed by signature keys gives each
   signature its own data (any of these forms); signatures it leaves out get
   generated inputs.
5. A tuple, Keras's `fit` convention: `(x,)`, `(x, y)` or `(x, y, sample_weight)`;
   `x` is taken and the rest ignored. This is how a two-input model is told apart:
   its inputs come as a *list* `[x1, x2]` (or a dict, or `((x1, x2), y)`), never as a
   bare tuple `(x1, x2)`, which reads as inputs `x1` with labels `x2`.
6. A list: for a single-input model, a list of arrays, each a sample or a batch; for a
   model with several inputs, one array per input in input order (Keras's
   `x=[x1, x2]`), or a list of per-call items as below.
7. Any other iterable (a generator, a `tf.data.Dataset`): items are one call each: an
   array (single input), a list of arrays in input order, a dict, or a tuple read as
   in rule 5 (a dataset of `(x, y)` batches gives its `x`).

Each item may hold a batch; batches are split into samples of the model's batch size
(one row, unless the input has a fixed larger first dimension). At most
`num_samples` samples are taken; a generator is not read further. Float data for an
int8/uint8/int16 input with quantization parameters is quantized with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

# Keras's fit convention: (x,), (x, y) or (x, y, sample_weight).
_MAX_XY = 3


def make_samples(
    runner, data, num_samples: int, seed: int = 0
) -> list[list[list[np.ndarray]]]:
    """Input samples for each of the runner's entries (see `ModelRunner.run`).

    `data` is `representative_data` in any form the module docstring lists.

    Raises:
        ValueError: the data does not match the model's inputs (the message names the
            input, the sample and the expected shape or dtype).
        TypeError: `data` is of a type none of the rules accept.
    """
    rng = np.random.default_rng(seed)
    entries = runner.entries
    per_entry = _split_by_signature(entries, data)
    out = []
    for entry, entry_data in zip(entries, per_entry, strict=True):
        inputs = _inputs_of(entry)
        if entry_data is None:
            out.append(
                [
                    [generate_sample(d, rng) for d in entry.inputs]
                    for _ in range(num_samples)
                ]
            )
        else:
            out.append(_collect(inputs, entry_data, num_samples))
    return out


class _Input:
    """One model input: its detail dict and every name a dict key may use for it."""

    def __init__(self, detail: dict, names: list[str]):
        self.detail = detail
        self.names = list(dict.fromkeys(n for n in names if n))
        self.dtype = np.dtype(detail["dtype"])
        sig = detail.get("shape_signature")
        shape = detail["shape"]
        self.signature = [
            int(s) for s in (sig if sig is not None and len(sig) else shape)
        ]

    @property
    def label(self) -> str:
        if len(self.names) == 1:
            return repr(self.names[0])
        return f"{self.names[0]!r} (tensor {self.names[-1]!r})"

    @property
    def rank(self) -> int:
        return len(self.signature)

    @property
    def rows(self) -> int:
        """Rows per sample: the fixed first dimension, else 1."""
        if self.rank and self.signature[0] > 1:
            return self.signature[0]
        return 1

    def expected(self) -> str:
        return "(" + ", ".join("any" if s < 0 else str(s) for s in self.signature) + ")"


def _inputs_of(entry) -> list[_Input]:
    """The entry's inputs with their names: the signature's input name (when there
    is one) first, then the tensor name."""
    if entry.key is not None:
        tensor = {n: d["name"] for n, d in entry.runner.get_input_details().items()}
        return [_Input(d, [d["name"], tensor.get(d["name"], "")]) for d in entry.inputs]
    aliases: dict[int, list[str]] = {}
    interpreter = entry.interpreter
    keys = list(interpreter.get_signature_list())
    if len(keys) == 1:
        details = interpreter.get_signature_runner(keys[0]).get_input_details()
        for name, d in details.items():
            aliases.setdefault(int(d["index"]), []).append(name)
    return [
        _Input(d, [*aliases.get(int(d["index"]), []), d["name"]]) for d in entry.inputs
    ]


def _split_by_signature(entries, data) -> list:
    if len(entries) == 1:
        return [data]
    keys = [e.key for e in entries]
    if isinstance(data, dict) and data and set(data) <= set(keys):
        return [data.get(k) for k in keys]
    if data is None:
        return [None] * len(entries)
    raise ValueError(
        f"This model has {len(keys)} signatures ({', '.join(map(repr, keys))}): pass "
        "`representative_data` as a dict keyed by signature key, e.g. "
        f"{{{keys[0]!r}: data}}. Received keys: {_keys(data)}"
    )


def _keys(data) -> str:
    if isinstance(data, dict):
        return ", ".join(map(repr, data)) or "none (an empty dict)"
    return f"none (a {type(data).__name__})"


def _collect(inputs: list[_Input], data, num_samples: int) -> list[list[np.ndarray]]:
    samples: list[list[np.ndarray]] = []
    for group, where in _groups(inputs, data):
        for sample in _split(inputs, group, where):
            samples.append(sample)
            if len(samples) >= num_samples:
                return samples
    if not samples:
        raise ValueError(
            "Expected at least one representative sample. Received: empty "
            "`representative_data`."
        )
    return samples


def _groups(inputs: list[_Input], data) -> Iterator[tuple[list, str]]:
    """(one array per input, where it came from) for each item of `data`."""
    if callable(data) and not _is_array(data):
        items = data()
        if not isinstance(items, Iterable):
            raise TypeError(
                "Expected the `representative_data` callable to return an iterable "
                "of input lists (TFLite's representative_dataset convention). "
                f"Received: it returned {type(items).__name__}"
            )
        for i, item in enumerate(items):
            where = f"item {i} of representative_data()"
            if isinstance(item, tuple):
                item = list(item)  # TFLite's convention: a tuple holds inputs
            yield _per_input(inputs, item, where), where
        return
    if isinstance(data, tuple):
        data = _x_of(data, "`representative_data`")
        if isinstance(data, tuple):
            data = list(data)  # ((x1, x2), y): Keras's multi-input x
    if _is_array(data) or isinstance(data, dict):
        yield _per_input(inputs, data, "`representative_data`"), "`representative_data`"
        return
    if (
        isinstance(data, list)
        and len(inputs) > 1
        and data
        and all(_is_array(a) for a in data)
    ):
        yield _per_input(inputs, data, "`representative_data`"), "`representative_data`"
        return
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise TypeError(
            "Expected `representative_data` to be an array, a list of arrays, a dict "
            "keyed by input name, an (x, y) tuple, an iterable of samples, or a "
            "callable returning one (TFLite's representative_dataset). Received: "
            f"{type(data).__name__}"
        )
    for i, item in enumerate(data):
        where = f"item {i} of `representative_data`"
        if isinstance(item, tuple):
            item = _x_of(item, where)
            if isinstance(item, tuple):
                item = list(item)
        yield _per_input(inputs, item, where), where


def _x_of(t: tuple, where: str):
    if not 1 <= len(t) <= _MAX_XY:
        raise ValueError(
            f"{where} is a tuple of {len(t)} items. A tuple is read as Keras's (x,), "
            "(x, y) or (x, y, sample_weight); pass a model's several inputs as a "
            "list [x1, x2] or a dict keyed by input name."
        )
    return t[0]


def _is_array(obj) -> bool:
    return isinstance(obj, np.ndarray) or (
        hasattr(obj, "__array__") and not isinstance(obj, (list, tuple, dict))
    )


def _per_input(inputs: list[_Input], item, where: str) -> list[np.ndarray]:
    """One array per model input, in input order."""
    if isinstance(item, dict):
        return _from_dict(inputs, item, where)
    if isinstance(item, list):
        arrays = item
    elif _is_array(item) or np.isscalar(item):
        arrays = [item]
    else:
        raise TypeError(
            f"Expected {where} to be an array, a list of arrays or a dict. Received: "
            f"{type(item).__name__}"
        )
    if len(arrays) != len(inputs):
        hint = ""
        if len(inputs) > 1 and len(arrays) == 1:
            hint = (
                " (a tuple (x1, x2) is read as (x, y): pass the "
                "inputs as a list [x1, x2] or a dict)"
            )
        raise ValueError(
            f"{where} holds {len(arrays)} array{'s' * (len(arrays) != 1)}, but the "
            f"model has {len(inputs)} input{'s' * (len(inputs) != 1)}: "
            f"{', '.join(i.label for i in inputs)}{hint}."
        )
    return [_as_array(a, inp, where) for a, inp in zip(arrays, inputs, strict=True)]


def _from_dict(inputs: list[_Input], item: dict, where: str) -> list[np.ndarray]:
    by_name = {n: inp for inp in inputs for n in inp.names}
    unknown = [k for k in item if k not in by_name]
    used = {id(by_name[k]) for k in item if k in by_name}
    missing = [inp for inp in inputs if id(inp) not in used]
    if unknown or missing:
        valid = "; ".join(" or ".join(map(repr, inp.names)) for inp in inputs)
        problem = (
            f"has keys {', '.join(map(repr, unknown))} that name no input"
            if unknown
            else f"does not name input {', '.join(i.label for i in missing)}"
        )
        raise ValueError(
            f"{where} {problem}. Keys must be the model's input names exactly: {valid}."
        )
    out = []
    for inp in inputs:
        key = next(k for k in item if k in inp.names)
        out.append(_as_array(item[key], inp, where))
    return out


def _as_array(value, inp: _Input, where: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{where} for input {inp.label} is not an array: {type(value).__name__}"
        ) from e


def _split(
    inputs: list[_Input], arrays: list[np.ndarray], where: str
) -> Iterator[list[np.ndarray]]:
    """Cut one item's arrays into samples of the model's input shapes."""
    stacked = [_stack(a, inp, where) for a, inp in zip(arrays, inputs, strict=True)]
    counts = [len(s) for s in stacked]
    if len(set(counts)) > 1:
        raise ValueError(
            f"{where} holds different numbers of samples per input: "
            + ", ".join(
                f"{inp.label} {n}" for inp, n in zip(inputs, counts, strict=True)
            )
            + "."
        )
    for i in range(counts[0] if counts else 0):
        yield [
            _check(s[i], a.shape, inp, where)
            for s, a, inp in zip(stacked, arrays, inputs, strict=True)
        ]


def _stack(a: np.ndarray, inp: _Input, where: str) -> np.ndarray:
    """`a` as samples stacked on a new first axis: one sample, a batch of rows (split
    into samples of `inp.rows` rows), or already stacked samples."""
    if inp.rank == 0:
        if a.ndim <= 1:
            return a.reshape(-1)
    elif a.ndim == inp.rank - 1 and inp.rows == 1:
        return a[None, None]
    elif a.ndim == inp.rank and len(a) % inp.rows == 0:
        return a.reshape((len(a) // inp.rows, inp.rows, *a.shape[1:]))
    elif a.ndim == inp.rank + 1:
        return a
    raise ValueError(
        f"{where} for input {inp.label} has shape {_shape(a.shape)}; the model expects "
        f"rank {inp.rank}, {inp.expected()} per call, or a batch of those."
    )


def _shape(shape) -> str:
    """A shape in plain numbers: (1, 28, 28), never (np.int32(1), ...)."""
    dims = [int(s) for s in shape]
    return "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"


def _check(x: np.ndarray, given: tuple, inp: _Input, where: str) -> np.ndarray:
    """`x` in the input's dtype, after checking its shape and values."""
    bad = [
        i
        for i, (got, want) in enumerate(zip(x.shape, inp.signature, strict=True))
        if want >= 0 and got != want
    ]
    if bad:
        read = (
            "" if tuple(given) == x.shape else f", read as samples of {_shape(x.shape)}"
        )
        raise ValueError(
            f"{where} for input {inp.label} has shape {_shape(given)}{read}; "
            f"the model expects rank {inp.rank}, {inp.expected()} per call (axis "
            f"{bad[0]} differs)."
        )
    dtype = inp.dtype
    kind = x.dtype.kind
    if dtype.kind == "f":
        if kind not in "biuf":
            raise ValueError(
                f"{where} for input {inp.label} holds {x.dtype} values; the model "
                f"takes {dtype} numbers."
            )
        return x.astype(dtype)
    if dtype.kind in "iu":
        scale, zero = inp.detail.get("quantization", (0.0, 0))
        info = np.iinfo(dtype)
        if kind == "f":
            if not scale:
                raise ValueError(
                    f"{where} for input {inp.label} holds {x.dtype} values; the model "
                    f"takes {dtype} values (indices or ids, not quantized): pass "
                    "integers."
                )
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
            return x.astype(dtype)
        if kind not in "biu":
            raise ValueError(
                f"{where} for input {inp.label} holds {x.dtype} values; the model "
                f"takes {dtype} integers."
            )
        if x.size and (x.min() < info.min or x.max() > info.max):
            raise ValueError(
                f"{where} for input {inp.label} holds values from {int(x.min())} to "
                f"{int(x.max())}, outside {dtype}'s range [{info.min}, {info.max}]."
            )
        return x.astype(dtype)
    if dtype.kind == "b":
        if kind not in "biu":
            raise ValueError(
                f"{where} for input {inp.label} holds {x.dtype} values; the model "
                "takes booleans."
            )
        return x.astype(dtype)
    return x.astype(dtype)


def generate_sample(detail: dict, rng: np.random.Generator) -> np.ndarray:
    """One generated sample for an input (standard normal floats, full-range int8,
    small non-negative ids)."""
    shape = [int(s) if s > 0 else 1 for s in detail["shape"]]
    sig = detail.get("shape_signature")
    if sig is not None and len(sig) == len(shape):
        shape = [int(s) if s > 0 else 1 for s in sig]
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(dtype)
    if dtype in (np.int8, np.uint8, np.int16):
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)
    if dtype.kind in "iu":
        # Index-like inputs (token ids, positions): small non-negative values.
        return rng.integers(0, 8, shape).astype(dtype)
    raise ValueError(
        f"Cannot generate inputs of dtype {dtype} for input {detail['name']!r}: pass "
        "`representative_data`."
    )
