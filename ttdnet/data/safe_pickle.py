"""Read THINGS-EEG2's pickled containers without executing arbitrary code.

The published files are pickles: the official release is ``np.save`` of a dict (an NPY file holding a
0-d object array), the NICE/ATM variant a raw ``pickle.dump`` under a ``.npy`` name. A plain
``np.load(..., allow_pickle=True)`` runs whatever a crafted file asks for. :class:`RestrictedUnpickler`
admits only the globals these files reference (numpy array and scalar reconstruction and dtypes); every
other global raises :class:`UnsafePickleError` before anything is called.
"""

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ttdnet.errors import TtdnetError


NPY_MAGIC = b"\x93NUMPY"
PICKLE_PROTO = b"\x80"

ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # arrays in pickle protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how pickle protocols <= 2 store bytes
    }
)
"""(module, name) pairs a THINGS-EEG2 pickle may reference; builtin containers and scalars need no global."""


class UnsafePickleError(TtdnetError):
    """A pickle referenced a global outside :data:`ALLOWED_GLOBALS`; nothing was executed."""


class ContainerFormatError(TtdnetError):
    """A file is neither an NPY object array nor a raw pickle, or is truncated."""


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that resolves only :data:`ALLOWED_GLOBALS`.

    Parameters
    ----------
    file : binary file object
        Positioned at the start of the pickle stream.
    source : str
        File name used in error messages.
    """

    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self.source}: the pickle references '{module}.{name}', which a THINGS-EEG2 file never contains; "
            "refusing to load it (nothing was executed). Re-download the file from the official source."
        )


def _skip_npy_header(handle, source: str) -> None:
    """Advance ``handle`` past an NPY header and check that it describes a 0-d object array."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ContainerFormatError(f"{source}: unsupported NPY format version {version}")
    except ValueError as error:
        raise ContainerFormatError(f"{source}: corrupt NPY header ({error})") from error
    if dtype != np.dtype(object):
        raise ContainerFormatError(
            f"{source}: NPY file holds a plain {dtype} array of shape {shape}, but a THINGS-EEG2 container "
            "is a pickled dict (np.save of a dict). Is this a ttdnet cache file rather than a dataset file?"
        )


def load_pickled_container(path: str | os.PathLike) -> Any:
    """Load a THINGS-EEG2 container file safely.

    Detects the container from the first bytes: ``\\x93NUMPY`` is an NPY file holding a 0-d object array
    (the official ``np.save(dict)``; its single element is returned), ``\\x80`` a raw pickle (the NICE
    format). Anything else is rejected.

    Parameters
    ----------
    path : path-like
        File to read.

    Returns
    -------
    object
        The unpickled object, normally a dict.

    Raises
    ------
    UnsafePickleError
        The pickle references a disallowed global.
    ContainerFormatError
        Unknown container, corrupt header or truncated data.
    """
    path = Path(path)
    source = str(path)
    with open(path, "rb") as handle:
        head = handle.read(len(NPY_MAGIC))
        handle.seek(0)
        if head.startswith(NPY_MAGIC):
            _skip_npy_header(handle, source)
            is_npy = True
        elif head.startswith(PICKLE_PROTO):
            is_npy = False
        else:
            raise ContainerFormatError(
                f"{source}: not a THINGS-EEG2 file (starts with {head!r}; expected an NPY file written by "
                "np.save or a pickle)"
            )
        try:
            loaded = RestrictedUnpickler(handle, source).load()
        except UnsafePickleError:
            raise
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError) as error:
            raise ContainerFormatError(
                f"{source}: the file is truncated or corrupt ({type(error).__name__}: {error}); re-download it"
            ) from error
    if is_npy:
        if not isinstance(loaded, np.ndarray) or loaded.dtype != object or loaded.shape != ():
            raise ContainerFormatError(f"{source}: expected a 0-d object array holding a dict")
        loaded = loaded.item()
    return loaded
