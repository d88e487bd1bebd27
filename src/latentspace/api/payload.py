"""Binary vector payloads for bulk writes: base64 float32 in JSON, or a NumPy ``.npy`` array.

A thousand 384-dimension vectors are 1.5 MB as float32 and about 8 MB as JSON numbers,
and parsing those numbers costs more than storing them; these forms carry the bytes as
they are.
"""

from __future__ import annotations

import io
import json
from typing import Any, TypeVar

import numpy as np
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from latentspace.api.convert import floats_from_base64, form_json
from latentspace.api.schemas import VectorColumns, VectorsUpsert
from latentspace.errors import InvalidInput

__all__ = [
    "NPY_MEDIA_TYPE",
    "form_columns",
    "json_vectors",
    "matrix_from_base64",
    "matrix_from_npy",
    "require_file",
    "validated_json",
]

NPY_MEDIA_TYPE = "application/x-npy"
_FLOATS = (np.float16, np.float32, np.float64)
_Columns = TypeVar("_Columns", bound=VectorColumns)
_Model = TypeVar("_Model", bound=BaseModel)


def _rows(flat: np.ndarray, dim: int, what: str) -> np.ndarray:
    if flat.size == 0:
        raise InvalidInput(f"{what} holds no vectors")
    if flat.size % dim:
        raise InvalidInput(
            f"{what} holds {flat.size} float32 values, not a whole number of vectors of "
            f"{dim} dimensions (the collection's dim)"
        )
    return flat.reshape(-1, dim)


def matrix_from_base64(data: str, dim: int) -> np.ndarray:
    """Rows of ``dim`` float32 values from base64 of their little-endian bytes, row-major.

    Raises:
        InvalidInput: not base64, or not a whole number of rows.
    """
    return _rows(floats_from_base64(data, name="vectors"), dim, "vectors")


def _check_npy_header(data: bytes) -> None:
    # NumPy allocates the array its header describes before it reads the data: a header
    # that claims 10^10 rows would reserve their memory. The bytes must be there first.
    if data.startswith(b"PK"):
        return  # an .npz archive: loaded lazily, and refused below
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:  # 3.0 only adds UTF-8 field names, which a float array has none of
            raise InvalidInput(f"vectors: .npy format {version} is not read; write 1.0 or 2.0")
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as e:
        raise InvalidInput(f"vectors are not a readable .npy array: {e}") from e
    claimed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize if dtype.itemsize else 0
    held = len(data) - stream.tell()
    if claimed > held:
        raise InvalidInput(
            f"the .npy header describes {shape} {dtype} ({claimed} bytes) but the body holds "
            f"{held} bytes after it"
        )


def matrix_from_npy(data: bytes, dim: int) -> np.ndarray:
    """A 2-D float array (float16, float32 or float64) of ``dim`` columns, as float32.

    Raises:
        InvalidInput: not an ``.npy`` file, pickled objects, another dtype or shape.
    """
    _check_npy_header(data)
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise InvalidInput(f"vectors are not a readable .npy array: {e}") from e
    if not isinstance(array, np.ndarray):
        raise InvalidInput("vectors must be one .npy array, not an .npz archive")
    if array.dtype.type not in _FLOATS:
        raise InvalidInput(f"vectors must be float16, float32 or float64, not {array.dtype}")
    if array.ndim != 2 or array.shape[1] != dim:
        raise InvalidInput(
            f"vectors must be a 2-D array of {dim} columns (the collection's dim), "
            f"got shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise InvalidInput("vectors holds no vectors")
    with np.errstate(over="ignore"):  # beyond float32's range: inf, refused per row
        return np.ascontiguousarray(array, dtype=np.float32)


def validated_json(model: type[_Model], body: bytes | str) -> _Model:
    """A JSON body as ``model`` (for routes that read the body themselves).

    Raises:
        RequestValidationError: it does not validate (answered as FastAPI's own 422).
    """
    try:
        parsed: _Model = model.model_validate_json(body)
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_url=False, include_context=False)) from e
    return parsed


def _validated(model: type[_Columns], body: bytes | str) -> _Columns:
    return validated_json(model, body)


def json_vectors(body: bytes, dim: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The rows and per-row columns of a JSON :class:`VectorsUpsert` body.

    Raises:
        RequestValidationError: the body does not validate.
        InvalidInput: the vectors are not rows of ``dim`` values.
    """
    parsed = _validated(VectorsUpsert, body)
    columns = {"ids": parsed.ids, "metadata": parsed.metadata, "uris": parsed.uris}
    if isinstance(parsed.vectors, str):
        return matrix_from_base64(parsed.vectors, dim), columns
    try:
        with np.errstate(over="ignore"):  # beyond float32's range: inf, refused per row
            matrix = np.asarray(parsed.vectors, dtype=np.float32)
    except ValueError as e:
        raise InvalidInput("vectors must be rows of equal length") from e
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] != dim:
        raise InvalidInput(
            f"vectors must be rows of {dim} numbers (the collection's dim), got shape "
            f"{matrix.shape}"
        )
    return matrix, columns


def form_columns(fields: dict[str, Any]) -> dict[str, Any]:
    """The ``ids``, ``metadata`` and ``uris`` form fields (JSON each), validated.

    Raises:
        InvalidInput: a field is not JSON.
        RequestValidationError: a field is JSON of the wrong shape.
    """
    raw = {k: form_json(v, field=k) for k, v in fields.items() if isinstance(v, str)}
    return _validated(VectorColumns, json.dumps(raw)).model_dump()


def require_file(part: object) -> UploadFile:
    """A multipart body's ``vectors`` part, which must be a file.

    Raises:
        InvalidInput: it is missing or a plain field.
    """
    if not isinstance(part, UploadFile):
        raise InvalidInput("multipart needs a `vectors` file part (an .npy array)")
    return part
