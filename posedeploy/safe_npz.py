"""Read .npy and .npz files without executing code from them or trusting their sizes (numpy only).

VideoPose3D's files hold pickled dicts of arrays (``positions_2d``, ``positions_3d``, ``metadata``),
and ``np.load(..., allow_pickle=True)`` would run whatever a crafted file's pickle asks for. Here an
object member is unpickled with an unpickler that can build only numpy arrays, dtypes and scalars
and the plain containers and values pickle encodes without imports (dict, list, tuple, str, bytes,
int, float, bool, None); any other global refuses the file. Plain arrays are read with pickling off.
Every array header is checked before reading: what it declares must be stored in the file (an
archive cannot inflate into more than its members say) and stay under a size limit.
"""

from __future__ import annotations

import pickle
import tokenize
import warnings
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from posedeploy.errors import InputError

# What numpy's own pickles of arrays need: (module, name); numpy 1 wrote numpy.core, numpy 2 numpy._core.
ALLOWED_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype")}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load '{module}.{name}'")
        with warnings.catch_warnings():  # numpy 2 warns on the numpy.core alias old files use
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


# The largest array a keypoint or data file may declare; its header is checked before any reading.
MAX_ARRAY_BYTES = 1 << 30


def _read_header(f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype, int]:
    version = np.lib.format.read_magic(f)
    try:
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (SyntaxError, tokenize.TokenError) as exc:
        # numpy parses the header as a Python literal and lets the parser's own errors through
        raise ValueError(f"unparsable array header ({type(exc).__name__}: {exc})") from None
    return shape, dtype, f.tell()


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def _check_declared(shape: tuple[int, ...], dtype: np.dtype, stored: int | None, path: Path, key: str) -> None:
    """Refuse an array header that declares more than :data:`MAX_ARRAY_BYTES`, or more data than is stored."""
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    what = f"{path}" + (f" member '{key}'" if key else "")
    if nbytes > MAX_ARRAY_BYTES:
        raise InputError(
            f"{what} declares a {'x'.join(map(str, shape))} {dtype} array ({_size(nbytes)}); "
            f"the limit is {_size(MAX_ARRAY_BYTES)}"
        )
    if stored is not None and not dtype.hasobject and nbytes != stored:
        raise InputError(f"{what} declares {nbytes:,} bytes of array data but holds {stored:,}: truncated or forged")


def _read_member(f: IO[bytes], path: Path, key: str, size: int | None = None) -> np.ndarray:
    """One .npy stream; ``size`` is its total length when known (to check the header against it)."""
    shape, dtype, offset = _read_header(f)
    _check_declared(shape, dtype, None if size is None else size - offset, path, key)
    if not dtype.hasobject:
        f.seek(0)
        return np.lib.format.read_array(f, allow_pickle=False)
    try:
        value = _NumpyOnlyUnpickler(f).load()
    except pickle.UnpicklingError as exc:
        raise InputError(f"{path}: member '{key}' holds more than numpy data ({exc}); not loading it") from None
    if not isinstance(value, np.ndarray):
        raise InputError(f"{path}: member '{key}' is a pickled {type(value).__name__}, not an array")
    return value


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every member of an .npz archive as an array; object members (pickled dicts and lists, as in
    VideoPose3D files) come back as object arrays, so ``result[key].item()`` gives the dict."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            out = {}
            for info in archive.infolist():
                key = info.filename.removesuffix(".npy")
                with archive.open(info) as f:
                    out[key] = _read_member(f, path, key, info.file_size)
            return out
    except InputError:
        raise
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        ValueError,
        pickle.UnpicklingError,
        AttributeError,
        TypeError,
        IndexError,
        KeyError,
    ) as exc:
        raise InputError(f"cannot read {path}: not a valid npz archive ({type(exc).__name__}: {exc})") from None


def load_npy(path: str | Path) -> np.ndarray:
    """A plain .npy array, its header checked against the file before the data is read."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _read_member(f, path, "", path.stat().st_size)
    except InputError:
        raise
    except (OSError, EOFError, ValueError) as exc:
        raise InputError(f"cannot read {path}: not a valid .npy array ({type(exc).__name__}: {exc})") from None
