"""Compiler flags shared by every kernel.

numba's on-disk cache is keyed by the timestamp of the file that defines a kernel,
not of the files it uses: after changing a flag here or a function of
``_activation.py`` (inlined into other kernels), delete the ``*.nbi``/``*.nbc`` files in
``kernels/__pycache__``, or the old machine code keeps running. (An install or upgrade
rewrites every file, so users never meet this.)
"""

from __future__ import annotations

# Every fast-math flag except ``nnan`` and ``ninf``: the estimator detects divergence by
# a non-finite loss or parameter, so NaN and inf must propagate exactly as in NumPy.
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

#: Keyword arguments of ``numba.njit`` for every kernel.
JIT_OPTIONS = {
    "cache": True,
    "fastmath": set(FASTMATH),
    "nogil": True,
    # Division by zero gives inf or NaN, as in NumPy, instead of raising; the check
    # the "python" model inserts would also stop the loops from vectorizing.
    "error_model": "numpy",
}
