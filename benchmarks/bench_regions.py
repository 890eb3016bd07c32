"""Heavy-ball stability region on an N x N (learning rate x momentum) grid, timed side
by side in one run: our jitted closed form, the public ``analyses.spectral_radius`` on
the materialised 2x2 blocks as JAX arrays and ``analyses.stability_region`` on the
axes (both on the jitted kernel, marginal test included), NumPy's batched ``eigvals``
on the same 2x2 blocks, and python-control's per-system ``poles`` (on a subsample,
extrapolated).

    python benchmarks/bench_regions.py [--n 1000] [--repeats 5] [--control-sample 300]

Prints a Markdown table (mode evaluations per second and ratios) for RESULTS.md.
"""

import argparse
import os
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from stability import analyses  # noqa: E402
from stability._machine import cpu_name  # noqa: E402
from stability.cli import ArgumentParser, positive_int  # noqa: E402
from stability.optimizers import modes  # noqa: E402


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    ap = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--n", type=positive_int, default=1000, help="grid side (default 1000)"
    )
    ap.add_argument(
        "--repeats", type=positive_int, default=5, help="best of (default 5)"
    )
    ap.add_argument(
        "--control-sample",
        type=positive_int,
        default=300,
        help="systems timed with python-control, at most N^2 (default 300)",
    )
    args = ap.parse_args(argv)

    n = args.n
    lr = np.linspace(1e-3, 4.0, n)
    beta = np.linspace(0.0, 0.999, n)
    x_grid, b_grid = np.meshgrid(lr, beta, indexing="ij")  # curvature 1
    count = x_grid.size

    xs, bs = jnp.asarray(x_grid), jnp.asarray(b_grid)
    ours = jax.jit(modes.heavy_ball_radius)
    rho = ours(xs, bs).block_until_ready()
    t_ours = _best(lambda: ours(xs, bs).block_until_ready(), args.repeats)

    blocks = np.asarray(modes.heavy_ball_block(xs, bs)[0])
    t_numpy = _best(lambda: np.linalg.eigvals(blocks), max(1, args.repeats // 2))
    rho_np = np.max(np.abs(np.linalg.eigvals(blocks)), axis=-1)

    jblocks = jnp.asarray(blocks)
    rho_api = analyses.spectral_radius(jblocks)
    t_api = _best(
        lambda: analyses.spectral_radius(jblocks).block_until_ready(), args.repeats
    )

    def region():
        return analyses.stability_region("heavy_ball", lr=lr, beta=beta, curvature=1.0)

    t_region = _best(region, args.repeats)

    rows = [
        ("ours: jitted closed form (jax, float64)", t_ours),
        ("analyses.spectral_radius, JAX (N, N, 2, 2) blocks", t_api),
        ("analyses.stability_region, axes in, record out", t_region),
        ("numpy.linalg.eigvals, batched 2x2", t_numpy),
    ]
    try:
        import control

        sample = min(args.control_sample, count)
        idx = np.random.default_rng(0).choice(count, sample, replace=False)
        flat = blocks.reshape(-1, 2, 2)[idx]

        def run_control():
            for m in flat:
                control.ss(m, np.zeros((2, 1)), np.zeros((1, 2)), 0, dt=True).poles()

        t_sample = _best(run_control, 1)
        rows.append(
            (
                f"python-control ss(...).poles(), {sample} systems, extrapolated",
                t_sample * count / sample,
            )
        )
    except ImportError:
        rows.append(("python-control (not installed)", float("nan")))

    agree = np.max(np.abs(np.asarray(rho) - rho_np))
    print(
        f"grid {n} x {n} = {count:,} modes; machine: {cpu_name()}, "
        f"{os.cpu_count()} cores, jax {jax.__version__}, numpy {np.__version__}"
    )
    print(f"max |rho_ours - rho_numpy| = {agree:.2e}")
    print(
        "max |rho_spectral_radius - rho_numpy| = "
        f"{np.max(np.abs(np.asarray(rho_api) - rho_np)):.2e}; spectral_radius "
        f"{count / t_api:.3g} modes/s, {t_numpy / t_api:.0f}x numpy eigvals"
    )
    print()
    print("| method | time (s) | modes/s | ours is faster by |")
    print("|---|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.4g} | {count / t:.3g} | {t / t_ours:.1f}x |")


if __name__ == "__main__":
    main()
