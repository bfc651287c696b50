"""One optimizer step on a flat float32 parameter vector: the numba kernels beside the
NumPy reference, and the memory traffic each kernel moves.

Every optimizer of ``optuna_dl.nn.optimizers`` runs ``Optimizer.update`` on one flat
vector (as training does: ``Network.flat_params``) under both backends, in the same
process, interleaved, on one BLAS thread; each row is the fastest of ``--rounds``
rounds of ``--steps`` steps. Two sizes: W2's 269,834 parameters (the parameters, the
gradient and the optimizer state, 4.3 MB for Adam, do not fit a 2 MB L2 cache) and
65,536 (they do). *GB/s* is the kernel's traffic (every array read once, every
updated one written once) over its time: when it matches across optimizers that do
different arithmetic, the step is bound by memory, not by the arithmetic.

    python benchmarks/optimizer_step.py [--steps 200] [--rounds 9]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from optuna_dl.nn import kernels
from optuna_dl.nn.optimizers import OPTIMIZERS, make_optimizer

SIZES = (269_834, 65_536)
#: Arrays each update reads (parameter, gradient, state) and writes (parameter, state).
STREAMS = {"sgd": (2, 1), "momentum": (3, 2), "rmsprop": (3, 2), "adam": (4, 3)}


def time_steps(name: str, backend: str, n: int, steps: int, rounds: int) -> float:
    """Fastest seconds per step of ``rounds`` rounds of ``steps`` steps."""
    rng = np.random.default_rng(0)
    param = rng.standard_normal(n, dtype=np.float32)
    grad = (1e-3 * rng.standard_normal(n)).astype(np.float32)
    optimizer = make_optimizer(name, beta=0.9, beta1=0.9, beta2=0.999, epsilon=1e-8)
    best = np.inf
    with kernels.use_backend(backend):
        optimizer.update([param], [grad], 1e-3)  # compiles, allocates the state
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(steps):
                optimizer.update([param], [grad], 1e-3)
            best = min(best, (time.perf_counter() - start) / steps)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    if not kernels.numba_available():
        raise SystemExit("numba is not installed: there is no kernel to measure")
    header = (
        f"{'optimizer':<10} {'parameters':>10} {'numba ms':>9} {'ns/param':>8} "
        f"{'GB/s':>6} {'numpy ms':>9} {'numpy/numba':>11}"
    )
    print(header)
    print("-" * len(header))
    with threadpool_limits(1):
        for n in SIZES:
            for name in OPTIMIZERS:
                fused = time_steps(name, "numba", n, args.steps, args.rounds)
                reference = time_steps(name, "numpy", n, args.steps, args.rounds)
                reads, writes = STREAMS[name]
                gigabytes = (reads + writes) * 4 * n / 1e9
                print(
                    f"{name:<10} {n:>10} {1e3 * fused:>9.3f} {1e9 * fused / n:>8.3f} "
                    f"{gigabytes / fused:>6.1f} {1e3 * reference:>9.3f} "
                    f"{reference / fused:>11.2f}"
                )


if __name__ == "__main__":
    main()
