"""Cost of tracking the edge of stability, timed side by side in one run on a
~100k-parameter network (``digits_mlp_wide``: MLP 64-256-256-10, 85,002 parameters,
batch 128, float32):

1. one Hessian-vector product (forward-over-reverse, jitted) against one gradient
   (jitted), both on the same batch: the raw kernels, and the HVP through the
   ``LinearOperator`` the eigen-solvers call (NumPy in and out, float32 here);
2. the top eigenvalue of the Hessian and of Adam's preconditioned Hessian to 1e-3
   relative residual by Lanczos along training (every ``--every`` steps), warm-started
   from the previous checkpoint's vector, against a cold (random) start, in gradient
   evaluations' time (each solve best of ``--rounds``);
3. the overhead of tracking both sharpnesses every ``--every`` steps
   (``stability.lopt.edge.track``) over the same jitted training loop without the
   measurements.

    python benchmarks/bench_edge.py [--steps 1000] [--every 100] [--repeats 20]

Prints a Markdown table for RESULTS.md.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from stability._machine import cpu_name
from stability.analyses import lanczos
from stability.cli import ArgumentParser, positive_int
from stability.lopt.edge import _train, track
from stability.lopt.tasks import get_task, param_count
from stability.operators import diagonal_preconditioner, hessian_operator
from stability.operators.network import _hvp_flat


def _per_call(fn, repeats):
    """Mean time of ``repeats`` calls."""
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def _interleaved(fns, repeats, rounds):
    """Per function, the best over ``rounds`` interleaved rounds of its mean call
    time (a shared machine slows whichever runs at the wrong moment)."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], _per_call(fn, repeats))
    return best


def main(argv=None):
    ap = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--task", default="digits_mlp_wide")
    ap.add_argument("--steps", type=positive_int, default=1000)
    ap.add_argument("--every", type=positive_int, default=100)
    ap.add_argument("--repeats", type=positive_int, default=20)
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    ap.add_argument("--rounds", type=positive_int, default=5, help="best of")
    args = ap.parse_args(argv)

    task = get_task(args.task)
    loss_fn = task.loss
    key_init, key_batch, key_measure = jax.random.split(jax.random.key(0), 3)
    params = task.init(key_init)
    batch = task.sample_batch(key_measure)
    n = param_count(params)

    # 1. one HVP against one gradient
    flat, unravel = ravel_pytree(params)
    grad = jax.jit(lambda p, b: ravel_pytree(jax.grad(loss_fn)(p, b))[0])
    v = jax.random.normal(jax.random.key(1), flat.shape, flat.dtype)
    one = jnp.ones((), flat.dtype)
    t_grad, t_hvp = _interleaved(
        [
            lambda: grad(params, batch).block_until_ready(),
            lambda: _hvp_flat(loss_fn, params, batch, one, v).block_until_ready(),
        ],
        args.repeats,
        args.rounds,
    )
    op = hessian_operator(loss_fn, params, batch)
    v64 = np.asarray(v, np.float64)
    (t_op,) = _interleaved([lambda: op.matvec(v64)], args.repeats, args.rounds)

    # 2. and 3.: Adam along training, with and without tracking
    opt = optax.adam(args.lr)
    sample = task.sample_batch

    def batches(step):
        return sample(jax.random.fold_in(key_batch, step))

    def plain():
        p, s = params, opt.init(params)
        for start in range(0, args.steps, args.every):
            length = min(args.every, args.steps - start)
            p, s, losses = _train(
                loss_fn, opt, batches, length, p, s, None, jnp.int32(start)
            )
        losses.block_until_ready()
        return p, s

    def tracked():
        return track(
            loss_fn,
            params,
            opt,
            batches,
            steps=args.steps,
            every=args.every,
            preconditioner="adam",
            measure_batch=batch,
            tol=1e-3,
        )

    plain()  # compile
    run = tracked()
    # interleaved rounds, best of each: the machine may be shared
    t_plain = t_tracked = float("inf")
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        plain()
        t_plain = min(t_plain, time.perf_counter() - t0)
        t0 = time.perf_counter()
        run = tracked()
        t_tracked = min(t_tracked, time.perf_counter() - t0)

    # warm against cold Lanczos at the checkpoints of a plain run
    warm_h, cold_h, warm_p, cold_p = [], [], [], []
    p, s = params, opt.init(params)
    prev_h = prev_p = None
    for start in range(0, args.steps, args.every):
        p, s, _ = _train(
            loss_fn, opt, batches, args.every, p, s, None, jnp.int32(start)
        )
        jax.block_until_ready((p, s))  # time the solver, not the training it awaits
        h_op = hessian_operator(loss_fn, p, batch)
        p_op = hessian_operator(
            loss_fn, p, batch, preconditioner=diagonal_preconditioner(s, "adam")
        )
        for ops, prev, warm, cold in (
            (h_op, prev_h, warm_h, cold_h),
            (p_op, prev_p, warm_p, cold_p),
        ):
            # best of interleaved rounds, like the gradient it is compared with
            t_warm = t_cold = float("inf")
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                pairs = lanczos(ops, v0=prev, tol=1e-3)
                t_warm = min(t_warm, time.perf_counter() - t0)
                t0 = time.perf_counter()
                cold_pairs = lanczos(ops, tol=1e-3)
                t_cold = min(t_cold, time.perf_counter() - t0)
            warm.append((t_warm, pairs.matvecs, pairs.converged))
            cold.append((t_cold, cold_pairs.matvecs, cold_pairs.converged))
            if ops is h_op:
                prev_h = pairs.eigenvectors
            else:
                prev_p = pairs.eigenvectors

    def summary(rows):
        rows = rows[1:] if len(rows) > 1 else rows  # the first has no warm vector
        t = np.median([r[0] for r in rows])
        m = np.median([r[1] for r in rows])
        ok = sum(r[2] for r in rows)
        return t, m, ok, len(rows)

    print(
        f"CPU: {cpu_name()}; JAX {jax.__version__}, {jax.device_count()} device(s); "
        f"task {args.task}, {n:,} parameters, batch {task.batch_size}, float32"
    )
    print()
    print("| quantity | time | ratio | goal |")
    print("|---|---|---|---|")
    print(f"| gradient (jitted) | {t_grad * 1e3:.3f} ms | 1 | |")
    print(
        f"| HVP (jitted kernel) | {t_hvp * 1e3:.3f} ms | "
        f"{t_hvp / t_grad:.2f}x gradient | <= 3x |"
    )
    print(
        f"| HVP through the LinearOperator | {t_op * 1e3:.3f} ms | "
        f"{t_op / t_grad:.2f}x gradient | |"
    )
    for name, warm, cold in (
        ("sharpness", warm_h, cold_h),
        ("preconditioned sharpness", warm_p, cold_p),
    ):
        tw, mw, okw, k = summary(warm)
        tc, mc, okc, _ = summary(cold)
        print(
            f"| {name} to 1e-3 residual, warm start (median of {k}) | "
            f"{tw * 1e3:.1f} ms, {mw:.0f} HVPs, {okw}/{k} converged | "
            f"{tw / t_grad:.1f} gradients | <= 20 |"
        )
        print(
            f"| {name} to 1e-3 residual, cold start (median of {k}) | "
            f"{tc * 1e3:.1f} ms, {mc:.0f} HVPs, {okc}/{k} converged | "
            f"{tc / t_grad:.1f} gradients | |"
        )
    print(
        f"| training, {args.steps} Adam steps (jitted scans of {args.every}) | "
        f"{t_plain:.2f} s | 1 | |"
    )
    print(
        f"| training + both sharpnesses every {args.every} steps | "
        f"{t_tracked:.2f} s | overhead {(t_tracked - t_plain) / t_plain:.0%} | "
        "< 50% |"
    )
    last = run.checkpoints[-1]
    print()
    print(
        f"last checkpoint: step {last.step}, loss {last.loss:.4g}, sharpness "
        f"{last.sharpness:.4g}, preconditioned {last.preconditioned_sharpness:.4g}"
        f" (threshold 38/lr = {38 / args.lr:.4g})"
    )


if __name__ == "__main__":
    main()
