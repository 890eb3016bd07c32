"""Meta-training throughput: inner member-steps per second of one outer step.

One outer step is one jitted program: a truncation of ``--truncation`` inner steps
for ``2 * --population`` members (minibatch sampling, task gradient, learned-optimizer
update, resets), then the ES/PES estimate and the AdamW step on theta. Throughput is
``2 * population * truncation * repeats / seconds`` after a warm-up step (compile).

    python benchmarks/bench_meta_train.py                     # defaults: digits_mlp,
    python benchmarks/bench_meta_train.py --host-devices 2    # 8 pairs, truncation 50

``--host-devices N`` sets ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before
JAX is imported, so the population is sharded over N CPU devices.
"""

import argparse
import json
import os
import platform
import sys
import time


def main(argv=None) -> int:
    from stability.cli import ArgumentParser, nonnegative_int, positive_int

    p = ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--task", default="digits_mlp", help="task name")
    p.add_argument(
        "--optimizer",
        default="star",
        choices=("star", "small_fc_lopt"),
        help="learned optimizer",
    )
    p.add_argument("--population", type=positive_int, default=8, help="ES pairs")
    p.add_argument(
        "--truncation", type=positive_int, default=50, help="inner steps per unroll"
    )
    p.add_argument(
        "--horizon", type=positive_int, default=1000, help="inner-training horizon"
    )
    p.add_argument("--repeats", type=positive_int, default=10, help="outer steps timed")
    p.add_argument(
        "--host-devices",
        type=nonnegative_int,
        default=0,
        help="CPU devices to shard the population over (0: JAX's default)",
    )
    args = p.parse_args(argv)
    if args.host_devices:
        flag = f"--xla_force_host_platform_device_count={args.host_devices}"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()

    import jax
    import jax.numpy as jnp

    from stability.lopt import meta_train as mt
    from stability.lopt.tasks import task_names

    if args.task not in task_names():
        p.error(f"--task: unknown task {args.task!r}; known: {', '.join(task_names())}")
    config = mt.MetaTrainConfig(
        task=args.task,
        optimizer=args.optimizer,
        horizon=args.horizon,
        truncation=args.truncation,
        population=args.population,
    )
    program = mt._program(config)
    state = program.init_state()
    poison = jax.device_put(
        jnp.zeros((config.population, 2), jnp.float32), program.pop_sharding
    )
    t0 = time.perf_counter()
    state, metrics = program.step(state, poison, True)
    jax.block_until_ready(metrics["meta_loss"])
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        state, metrics = program.step(state, poison, True)
    jax.block_until_ready((state, metrics))
    seconds = time.perf_counter() - t0
    member_steps = 2 * config.population * config.truncation * args.repeats
    record = {
        "task": config.task,
        "optimizer": config.optimizer,
        "pairs": config.population,
        "truncation": config.truncation,
        "devices": len(program.devices),
        "first_step_s": round(compile_s, 2),
        "outer_step_s": round(seconds / args.repeats, 4),
        "member_steps_per_s": round(member_steps / seconds),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.system()}",
        "jax": jax.__version__,
        "load_avg": os.getloadavg()[0],
    }
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
