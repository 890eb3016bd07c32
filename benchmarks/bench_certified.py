"""Certified rates on F(mu, L): one certificate (bisection included) for 1- to 4-state
optimizers, and a certified heavy-ball region on an N x N (learning rate x momentum)
grid, one SDP per cell.

    python benchmarks/bench_certified.py [--n 50] [--repeats 3] [--mu 1]
                                         [--smoothness 25]

A certificate is timed twice: the first call in the process (it compiles the SDP for
that number of states) and the best of ``--repeats`` later calls with fresh
hyperparameters (the compiled SDP is reused; only numbers change). Prints a Markdown
table for RESULTS.md. Needs the ``robust`` extra.
"""

import argparse
import math
import os
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from stability import analyses  # noqa: E402
from stability._machine import cpu_name  # noqa: E402
from stability.analyses import certified  # noqa: E402
from stability.cli import ArgumentParser, positive_int  # noqa: E402


def _cases(mu, L, jitter):
    k = L / mu
    b = (math.sqrt(k) - 1) / (math.sqrt(k) + 1)
    return [
        ("gd (1 state)", "gd", dict(lr=(1 + jitter) / L)),
        ("heavy ball (2)", "heavy_ball", dict(lr=(0.5 + jitter) / L, beta=0.5)),
        ("Nesterov (2)", "nesterov", dict(lr=1 / L, beta=b * (1 - jitter))),
        (
            "AggMo, 3 decays (4)",
            "aggmo",
            dict(lr=(1 + jitter) / L, betas=(0.0, 0.5, 0.9)),
        ),
    ]


def main(argv=None):
    ap = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=positive_int, default=50, help="grid side (50)")
    ap.add_argument("--repeats", type=positive_int, default=3, help="best of (3)")
    ap.add_argument("--mu", type=float, default=1.0, help="strong convexity (1)")
    ap.add_argument("--smoothness", type=float, default=25.0, help="L (25)")
    args = ap.parse_args(argv)
    mu, L = args.mu, args.smoothness
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores visible; F({mu:g}, {L:g})\n")
    print(
        "| optimizer | status | certified rate | quadratic rate | SDP solves "
        "| first call (s) | later calls, best (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for i, (label, family, params) in enumerate(_cases(mu, L, 0.0)):
        t0 = time.perf_counter()
        r = analyses.certified_rate(family, mu=mu, L=L, **params)
        first = time.perf_counter() - t0
        later = []
        for rep in range(args.repeats):
            _, _, p = _cases(mu, L, 0.01 * (rep + 1))[i]
            t0 = time.perf_counter()
            analyses.certified_rate(family, mu=mu, L=L, **p)
            later.append(time.perf_counter() - t0)
        print(
            f"| {label} | {r.status} | {r.rate:.6f} | {r.quadratic_rate:.6f} "
            f"| {r.num_solves} | {first:.3f} | {min(later):.3f} |"
        )
    n = args.n
    lrs = np.linspace(2.0 / (L * n), 4.0 / L, n)
    betas = np.linspace(0.0, 0.95, n)
    certified._LMIS.clear()  # time the region's compile too
    t0 = time.perf_counter()
    reg = analyses.certified_region("heavy_ball", mu=mu, L=L, lr=lrs, beta=betas)
    dt = time.perf_counter() - t0
    print(
        f"\nheavy-ball certified region {n}x{n}: {dt:.1f} s, {reg.num_solves} SDP "
        f"solves ({1e3 * dt / max(reg.num_solves, 1):.1f} ms a cell solved), "
        f"{int(reg.certified.sum())} certified, {int(reg.band.sum())} in the band, "
        f"{int((~reg.quadratic_stable).sum())} unstable on a quadratic, "
        f"{int(reg.solver_failed.sum())} solver failures"
    )


if __name__ == "__main__":
    main()
