"""Request parsing and checking for ``unidl serve``: TF Serving's JSON predict requests turned
into NumPy batches that match the model's inputs, and predictions turned back into JSON.

Everything a client can get wrong is a :class:`RequestError` whose message names the field,
what was expected and what was sent (``instances[3][2]: expected a number (input 'x' is
float32), got the string "a"``). Nothing here imports Starlette, so the rules are usable (and
testable) without a server.

Numbers: float inputs take JSON integers and floats; integer inputs take integers only; bool
inputs take ``true``/``false`` only. NaN and Infinity (tokens Python's and TF Serving's JSON
readers accept) and numbers that overflow the input's dtype are rejected: a non-finite input
would only come back as NaN predictions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from unidl import dtypes as _dt

__all__ = ["RequestError", "TensorSpec", "Signature", "PredictRequest", "parse_json",
           "parse_predict", "format_predictions", "flatten_outputs", "SIGNATURE_NAME"]

#: the only signature a unidl model has (TF Serving's default name)
SIGNATURE_NAME = "serving_default"

#: TF Serving's dtype names, for the metadata endpoint
_TF_DTYPES = {"float16": "DT_HALF", "bfloat16": "DT_BFLOAT16", "float32": "DT_FLOAT",
              "float64": "DT_DOUBLE", "int8": "DT_INT8", "int16": "DT_INT16",
              "int32": "DT_INT32", "int64": "DT_INT64", "uint8": "DT_UINT8",
              "uint16": "DT_UINT16", "uint32": "DT_UINT32", "uint64": "DT_UINT64",
              "bool": "DT_BOOL"}

_REQUEST_KEYS = ("instances", "inputs", "signature_name")


class RequestError(Exception):
    """A request the server cannot answer; ``status`` is its HTTP status (400 unless said),
    ``headers`` any headers the error response needs (``Allow`` for a 405)."""

    def __init__(self, message: str, status: int = 400, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers = headers


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: its name, the shape of ONE sample (``None`` for an axis of
    any length; ``shape=None`` for unknown rank) and its unidl dtype name."""

    name: str
    shape: tuple | None
    dtype: str

    def describe(self) -> str:
        """``'x' (float32, samples of shape (8, 8))`` for messages."""
        shape = "any shape" if self.shape is None else f"shape {_fmt_shape(self.shape)}"
        return f"{self.name!r} ({self.dtype}, samples of {shape})"

    def tensor_info(self) -> dict:
        """TF Serving's ``TensorInfo`` JSON for the metadata endpoint (batch axis first)."""
        if self.shape is None:
            shape = {"dim": [], "unknown_rank": True}
        else:
            dims = [{"size": "-1" if d is None else str(d), "name": ""}
                    for d in (None,) + tuple(self.shape)]
            shape = {"dim": dims, "unknown_rank": False}
        return {"dtype": _TF_DTYPES.get(self.dtype, "DT_INVALID"), "tensor_shape": shape,
                "name": self.name}


@dataclass(frozen=True)
class Signature:
    """The model's inputs (in the order :meth:`model_input` expects them) and how
    ``model.predict`` takes them: one array (``"single"``), a list, or a dict by name.
    ``outputs`` is None when the model does not declare them (a subclassed model)."""

    inputs: tuple
    structure: str
    outputs: tuple | None

    @classmethod
    def from_model(cls, model) -> Signature:
        """The signature of a built functional or Sequential model; a subclassed model that
        declares no inputs gets one input of any shape in the model's float dtype."""
        declared = getattr(model, "inputs", None)
        if declared is None:
            fallback = TensorSpec("input", None, _dt.standardize(getattr(model, "dtype", None)
                                                                 or "float32"))
            return cls((fallback,), "single", None)
        structure, inputs = _specs(declared, "input")
        outputs = getattr(model, "outputs", None)
        return cls(inputs, structure, None if outputs is None else _specs(outputs, "output")[1])

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    def model_input(self, arrays: list):
        """``arrays`` (one per input, in order) in the structure ``model.predict`` takes."""
        if self.structure == "single":
            return arrays[0]
        if self.structure == "dict":
            return dict(zip(self.names, arrays))
        return list(arrays)

    def metadata(self) -> dict:
        """TF Serving's ``signature_def`` map for ``GET /v1/models/NAME/metadata``."""
        outputs = self.outputs or ()
        return {SIGNATURE_NAME: {
            "inputs": {spec.name: spec.tensor_info() for spec in self.inputs},
            "outputs": {spec.name: spec.tensor_info() for spec in outputs},
            "method_name": "tensorflow/serving/predict"}}


def _specs(declared, prefix: str) -> tuple[str, tuple]:
    """(structure, specs) of a model's symbolic inputs or outputs (one, a list or a dict)."""
    def spec(name, sym):
        shape = tuple(sym.shape[1:]) if getattr(sym, "shape", None) is not None else None
        return TensorSpec(str(name), shape, _dt.standardize(getattr(sym, "dtype", "float32")))

    if isinstance(declared, dict):
        return "dict", tuple(spec(k, declared[k]) for k in sorted(declared))
    if isinstance(declared, (list, tuple)):
        names = [getattr(s, "name", None) if prefix == "input" else None for s in declared]
        if None in names or len(set(names)) != len(names):
            names = [f"{prefix}_{i}" for i in range(len(declared))]
        return "list", tuple(spec(n, s) for n, s in zip(names, declared))
    name = getattr(declared, "name", None) if prefix == "input" else None
    return "single", (spec(name or f"{prefix}_0", declared),)


@dataclass
class PredictRequest:
    """A checked predict request: one array per model input (batch axis first, in the
    signature's order), the number of samples, and whether it was columnar (``inputs``)."""

    arrays: list
    rows: int
    columnar: bool


# -- JSON --------------------------------------------------------------------------------------
def parse_json(body: bytes):
    """The JSON value of a request body, or a RequestError saying why it is not JSON."""
    if not body.strip():
        raise RequestError('the request body is empty; expected a JSON object such as '
                           '{"instances": [...]}')
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"the request body is not UTF-8 text (byte {exc.start}); expected "
                           "a JSON object") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(f"the request body is not valid JSON: {exc.msg} (line "
                           f"{exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise RequestError("the request body is nested too deeply to parse") from None


def parse_predict(body: bytes, signature: Signature) -> PredictRequest:
    """Check a ``:predict`` request body against ``signature`` and return its batch."""
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise RequestError(f"the request body must be a JSON object with \"instances\" or "
                           f"\"inputs\", got {_describe(payload)}")
    unknown = [k for k in payload if k not in _REQUEST_KEYS]
    if unknown:
        raise RequestError(f"unknown key {unknown[0]!r} in the request; expected \"instances\" "
                           "(row format) or \"inputs\" (columnar format), and optionally "
                           "\"signature_name\"")
    _check_signature_name(payload.get("signature_name", SIGNATURE_NAME))
    if "instances" in payload and "inputs" in payload:
        raise RequestError("the request has both \"instances\" and \"inputs\"; send one: "
                           "\"instances\" (row format) or \"inputs\" (columnar format)")
    if "instances" in payload:
        arrays = _parse_rows(payload["instances"], signature)
        return PredictRequest(arrays, len(arrays[0]), columnar=False)
    if "inputs" in payload:
        arrays = _parse_columns(payload["inputs"], signature)
        return PredictRequest(arrays, len(arrays[0]), columnar=True)
    raise RequestError("the request needs \"instances\" (row format: a list with one entry "
                       "per sample) or \"inputs\" (columnar format: the batch, or an object "
                       "of batches by input name)")


def _check_signature_name(name) -> None:
    if name != SIGNATURE_NAME:
        raise RequestError(f"signature_name {name!r} not found; the model has one signature, "
                           f"{SIGNATURE_NAME!r}")


def _parse_rows(instances, signature: Signature) -> list:
    """The arrays of a row-format request (``instances``: one entry per sample; an entry is
    the sample, or an object of samples by input name)."""
    if not isinstance(instances, list):
        raise RequestError(f"\"instances\" must be a list with one entry per sample, got "
                           f"{_describe(instances)}")
    if not instances:
        raise RequestError("\"instances\" is empty; send at least one sample")
    named = len(signature.inputs) > 1 or isinstance(instances[0], dict)
    if not named:
        spec = signature.inputs[0]
        return [to_array(instances, spec, "instances", _index_loc("instances"))]
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict):
            raise RequestError(f"instances[{i}]: expected an object of inputs by name "
                               f"({_names(signature)}), got {_describe(inst)}")
    keys = _match_names(instances[0], signature, "instances[0]")
    arrays = []
    for spec, key in zip(signature.inputs, keys):
        column = []
        for i, inst in enumerate(instances):
            if key not in inst or len(inst) != len(keys):
                _match_names(inst, signature, f"instances[{i}]")
                raise RequestError(f"instances[{i}] has inputs {sorted(inst)}, but "
                                   f"instances[0] has {sorted(instances[0])}")
            column.append(inst[key])
        arrays.append(to_array(column, spec, f"instances[*][{key!r}]", _row_loc(key)))
    return arrays


def _parse_columns(inputs, signature: Signature) -> list:
    """The arrays of a columnar request (``inputs``: the batch, or batches by input name)."""
    if isinstance(inputs, dict):
        keys = _match_names(inputs, signature, "inputs")
        arrays = [to_array(inputs[k], spec, f"inputs[{k!r}]", _index_loc(f"inputs[{k!r}]"))
                  for spec, k in zip(signature.inputs, keys)]
        lengths = {k: len(a) for k, a in zip(keys, arrays)}
        if len(set(lengths.values())) > 1:
            got = ", ".join(f"inputs[{k!r}] has {n}" for k, n in lengths.items())
            raise RequestError(f"every input needs the same number of samples; got: {got}")
        return arrays
    if len(signature.inputs) > 1:
        raise RequestError(f"the model has {len(signature.inputs)} inputs "
                           f"({_names(signature)}): send \"inputs\" as an object of batches "
                           f"by input name, got {_describe(inputs)}")
    return [to_array(inputs, signature.inputs[0], "inputs", _index_loc("inputs"))]


def _match_names(given: dict, signature: Signature, where: str) -> list[str]:
    """The keys of ``given`` in the signature's input order. A single-input model takes any
    one key (its input's name is generated, so clients cannot be expected to know it)."""
    if len(signature.inputs) == 1 and len(given) == 1:
        return list(given)
    expected = signature.names
    missing = [n for n in expected if n not in given]
    extra = [k for k in given if k not in expected]
    if missing or extra:
        problem = (f"missing input {missing[0]!r}" if missing
                   else f"unknown input {extra[0]!r}")
        raise RequestError(f"{where}: {problem}; the model's inputs are {_names(signature)}")
    return expected


def _names(signature: Signature) -> str:
    return ", ".join(repr(n) for n in signature.names)


# -- one input ---------------------------------------------------------------------------------
_ALLOWED = {"f": (int, float), "i": (int,), "u": (int,), "b": (bool,)}
_KIND_WORDS = {"f": "a number", "i": "an integer", "u": "a non-negative integer",
               "b": "true or false"}


def _index_loc(top: str) -> Callable:
    return lambda idx: top + "".join(f"[{i}]" for i in idx)


def _row_loc(key: str) -> Callable:
    return lambda idx: (f"instances[{idx[0]}][{key!r}]" + "".join(f"[{i}]" for i in idx[1:])
                        if idx else f"instances[*][{key!r}]")


def to_array(value, spec: TensorSpec, what: str, loc: Callable) -> np.ndarray:
    """``value`` (a JSON batch: a list with one entry per sample) as a NumPy array of
    ``spec``'s dtype, checked to be rectangular, of the right element types, of the right
    per-sample shape and finite. ``what`` names the batch in messages and ``loc(index)``
    one element of it."""
    if not isinstance(value, list):
        raise RequestError(f"{what}: expected a list of samples for input "
                           f"{spec.describe()}, got {_describe(value)}")
    if not value:
        raise RequestError(f"{what} is empty; send at least one sample")
    dtype = _dt.numpy_dtype(spec.dtype)
    if dtype.kind not in _ALLOWED:
        raise RequestError(f"input {spec.name!r} has dtype {spec.dtype}, which JSON requests "
                           "cannot carry")
    grid, types = _grid(value, loc)
    _check_types(grid, types, spec, dtype, loc)
    _check_shape(grid, spec, what)
    return _convert(grid, spec, dtype, loc)


def _grid(value: list, loc: Callable) -> tuple[np.ndarray, set]:
    """``value`` as an object array of its JSON leaves and the set of their Python types, or
    a RequestError naming the first element that makes it ragged."""
    try:
        grid = np.array(value, dtype=object)
    except (ValueError, RecursionError):
        raise RequestError(_ragged(value, loc)) from None
    types = set(map(type, grid.flat))
    if list in types:
        raise RequestError(_ragged(value, loc))
    return grid, types


def _ragged(value: list, loc: Callable) -> str:
    """The message for a batch that is not a rectangular array: names the first element
    whose length or kind differs from the first element's at the same depth."""
    shape, node = [], value
    while isinstance(node, list):
        shape.append(len(node))
        node = node[0] if node else None
    try:
        found = _first_mismatch(value, shape, ())
    except RecursionError:
        found = None
    if found is None:
        return f"{loc(())}: not a rectangular array of numbers"
    idx, problem = found
    first = loc((0,) * len(idx))
    return (f"{loc(idx)} {problem} but {first} has {_count(shape, len(idx))}; every sample "
            "must be a rectangular array of the same shape")


def _count(shape, depth) -> str:
    return "no list" if depth >= len(shape) else _elements(shape[depth])


def _first_mismatch(node, shape, idx):
    """(index, problem) of the first element of ``node`` not shaped like ``shape``."""
    depth = len(idx)
    if depth >= len(shape):
        return (idx, f"is a list of {_elements(len(node))}") if isinstance(node, list) else None
    if not isinstance(node, list):
        return idx, f"is {_describe(node)}"
    if len(node) != shape[depth]:
        return idx, f"has {_elements(len(node))}"
    for i, child in enumerate(node):
        found = _first_mismatch(child, shape, idx + (i,))
        if found:
            return found
    return None


def _check_types(grid: np.ndarray, types: set, spec: TensorSpec, dtype: np.dtype,
                 loc: Callable) -> None:
    """Every leaf is a JSON value the input's dtype takes (booleans are not numbers)."""
    allowed = _ALLOWED[dtype.kind]
    if types <= set(allowed):
        return
    for k, v in enumerate(grid.flat):
        if type(v) not in allowed:
            where = loc(np.unravel_index(k, grid.shape))
            raise RequestError(f"{where}: expected {_KIND_WORDS[dtype.kind]} (input "
                               f"{spec.name!r} is {spec.dtype}), got {_describe(v)}")


def _check_shape(grid: np.ndarray, spec: TensorSpec, what: str) -> None:
    """The samples (``grid[i]``) have the input's shape."""
    got = grid.shape[1:]
    if spec.shape is None:
        if grid.ndim < 1:
            raise RequestError(f"{what}: expected a list of samples, got a single value")
        return
    if len(got) == len(spec.shape) and all(e is None or e == g
                                           for e, g in zip(spec.shape, got)):
        return
    raise RequestError(f"{what}: expected samples of shape {_fmt_shape(spec.shape)} for input "
                       f"{spec.name!r}, got {len(grid)} sample(s) of shape {_fmt_shape(got)} "
                       f"(the batch has shape {_fmt_shape(grid.shape)})")


def _convert(grid: np.ndarray, spec: TensorSpec, dtype: np.dtype, loc: Callable) -> np.ndarray:
    """``grid`` as ``dtype``, rejecting non-finite floats and integers out of range."""
    if dtype.kind == "b":
        return grid.astype(bool)
    if dtype.kind == "f":
        try:
            wide = grid.astype(np.float64)
        except OverflowError:  # an integer beyond float64's range
            wide = np.array([float(v) if abs(v) < 2 ** 1023 else np.inf for v in grid.flat]
                            ).reshape(grid.shape)
        with np.errstate(over="ignore", invalid="ignore"):
            arr = wide.astype(dtype)
        bad = ~np.isfinite(arr.astype(np.float32) if dtype.itemsize < 4 else arr)
        if bad.any():
            k = int(np.flatnonzero(bad.ravel())[0])
            v = grid.flat[k]
            raise RequestError(f"{loc(np.unravel_index(k, grid.shape))}: {_number(v)} is not a "
                               f"finite {spec.dtype} number; inputs must be finite (NaN and "
                               "Infinity are rejected)")
        return arr
    info = np.iinfo(dtype)
    try:
        wide = grid.astype(np.int64)
    except OverflowError:  # a value beyond int64
        wide = None
    if wide is not None and (not wide.size or info.min <= wide.min() and wide.max() <= info.max):
        return wide.astype(dtype)
    for k, v in enumerate(grid.flat):
        if not info.min <= v <= info.max:
            raise RequestError(f"{loc(np.unravel_index(k, grid.shape))}: {v} is out of range "
                               f"for input {spec.name!r} ({spec.dtype}: {info.min} to "
                               f"{info.max})")
    return grid.astype(dtype)  # (uint64 values beyond int64)


# -- output ------------------------------------------------------------------------------------
def flatten_outputs(out) -> tuple[list | None, list]:
    """(names, arrays) of ``model.predict``'s result: names is None for one output array,
    ``output_0``, ``output_1`` ... for a list, the keys (sorted) for a dict."""
    if isinstance(out, dict):
        names = sorted(out)
        return names, [np.asarray(out[k]) for k in names]
    if isinstance(out, (list, tuple)):
        return [f"output_{i}" for i in range(len(out))], [np.asarray(o) for o in out]
    return None, [np.asarray(out)]


def format_predictions(names: list | None, arrays: list, columnar: bool) -> dict:
    """TF Serving's response: ``{"predictions": [one entry per sample]}`` for the row format
    (an entry is an object by output name when the model has several outputs), or
    ``{"outputs": batch}`` (an object of batches by output name) for the columnar format."""
    if columnar:
        if names is None:
            return {"outputs": arrays[0].tolist()}
        return {"outputs": {n: a.tolist() for n, a in zip(names, arrays)}}
    if names is None:
        return {"predictions": arrays[0].tolist()}
    columns = [a.tolist() for a in arrays]
    return {"predictions": [dict(zip(names, row)) for row in zip(*columns)]}


# -- wording -----------------------------------------------------------------------------------
def _fmt_shape(shape) -> str:
    dims = ["None" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _elements(n: int) -> str:
    return f"{n} element" if n == 1 else f"{n} elements"


def _number(v) -> str:
    if isinstance(v, float) and v != v:
        return "NaN"
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return "Infinity" if v > 0 else "-Infinity"
    return repr(v)


def _describe(v) -> str:
    """A JSON value as a phrase: ``the string "a"``, ``true (a boolean)``, ``null``..."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"{json.dumps(v)} (a boolean)"
    if isinstance(v, str):
        text = v if len(v) <= 20 else v[:20] + "..."
        return f"the string {json.dumps(text)}"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return f"a list of {_elements(len(v))}"
    return f"the number {_number(v)}"
