"""Time one optimizer step of STAR and small_fc_lopt against ``optax.adam``.

Side by side in one run, on the same pytree (a realistic MLP/CNN mix of about 10k,
1M and 10M parameters): STAR, small_fc_lopt and Adam, plus the naive ports of STAR
and small_fc_lopt that materialise the ``(num_elements, 39)`` feature stack.

Each step is ``params, state = step(params, state, grads)`` jitted with the params and
state buffers donated, timed with ``block_until_ready``; the median of ``--repeats``
calls is reported, with its ratio to Adam, the FLOP count and bytes accessed from XLA's
cost analysis (as achieved GFLOP/s and GB/s), and the compulsory memory traffic (state
and parameters read and written once, gradients read once) against the machine's
memory bandwidth, measured in the same run by copying a large array.

By default each optimizer's calls run in a row, so a state that fits in the last-level
cache stays there (1M parameters of Adam do, STAR's do not). ``--interleave`` runs one
call of each optimizer per round instead: every step starts with its state out of
cache, as in training, where the forward and backward passes come in between, and the
ratio is the median of the per-round ratios, which a change of load hits alike.
``--vector-width 512`` compiles every step with the XLA CPU option
``xla_cpu_prefer_vector_width=512`` (XLA prefers 256-bit vectors by default), and
``--reassociate`` with the options that let LLVM reorder floating-point sums
(:func:`stability.lopt.cpu_compiler_options`); every optimizer's step, Adam's too,
is compiled with the same options.

``--shapes 64x4099 50257`` also times one-tensor pytrees of those shapes (without
the naive ports; ``--sizes`` with no size times only them): awkward shapes, such as a
prime last axis or a kernel laid out (out, in, kh, kw), take other code paths than
the named pytrees.

``--train-step`` times whole training steps instead: the forward and backward pass
of a CNN followed by an MLP whose parameters are that pytree, on a fixed random batch
of ``--batch`` images, then the optimizer's update, jitted together. Its ratio is
what switching from Adam to STAR costs a training loop of that size.

Run (CPU)::

    /work/venv/bin/python benchmarks/bench_step.py --sizes 10k 1M 10M
    /work/venv/bin/python benchmarks/bench_step.py --interleave --vector-width 512
    /work/venv/bin/python benchmarks/bench_step.py --reassociate --vector-width 512
    /work/venv/bin/python benchmarks/bench_step.py --train-step --interleave

The load of the machine (``uptime``) is printed before and after: timings taken
while other processes share the cores are not comparable.
"""

import argparse
import importlib
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from stability._machine import cpu_name
from stability.cli import ArgumentParser, positive_int
from stability.lopt import _features, cpu_compiler_options, init_theta

star_module = importlib.import_module("stability.lopt.star")

# layer widths of each named size: (conv channels, dense widths); see make_params
SIZES = {
    "10k": ((1, 8, 16), (256, 32, 10)),
    "1M": ((3, 32, 64, 128), (1024, 768, 128, 10)),
    "10M": ((3, 64, 128, 256, 256), (4096, 2048, 512, 10)),
}


def make_params(size: str, dtype=jnp.float32) -> dict:
    """A CNN followed by an MLP: 3x3 conv kernels and biases, dense matrices and
    biases, a layer-norm scale vector per dense layer and a scalar temperature."""
    convs, dense = SIZES[size]
    rng = np.random.default_rng(0)
    params = {}
    for i, (cin, cout) in enumerate(zip(convs[:-1], convs[1:], strict=True)):
        params[f"conv{i}"] = {
            "kernel": rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin),
            "bias": np.zeros(cout),
        }
    for i, (din, dout) in enumerate(zip(dense[:-1], dense[1:], strict=True)):
        params[f"dense{i}"] = {
            "kernel": rng.standard_normal((din, dout)) / np.sqrt(din),
            "bias": np.zeros(dout),
            "ln_scale": np.ones(dout),
        }
    params["temperature"] = np.ones(())
    return jax.tree.map(lambda x: jnp.asarray(x, dtype), params)


def optimizers() -> dict:
    theta3 = init_theta(jax.random.key(0), heads=3)
    theta2 = init_theta(jax.random.key(0), heads=2)
    star_cfg = star_module._Config(
        heads=3,
        step_mult=1e-3,
        exp_mult=1e-3,
        nominal_stepsize=1e-3,
        precondition=True,
        nominal=True,
    )
    small_cfg = star_module._Config(heads=2, step_mult=1e-3, exp_mult=1e-3)
    build = star_module._transformation
    return {
        "adam": optax.adam(1e-3),
        "star": build(theta3, star_cfg, _features.fused_heads),
        "small_fc_lopt": build(theta2, small_cfg, _features.fused_heads),
        "star (naive)": build(theta3, star_cfg, _features.dense_heads),
        "small_fc_lopt (naive)": build(theta2, small_cfg, _features.dense_heads),
    }


def compulsory_bytes(name: str, params) -> int:
    """Bytes every implementation must move: state and params read and written once,
    gradients read once (float32)."""
    n = sum(x.size for x in jax.tree.leaves(params))
    per_element = {"adam": 2 + 2 + 1}  # (p, m, v) read, written; g read
    # STAR/small_fc_lopt: p, 3 momenta, v read and written; g read. The Adafactor
    # row/column accumulators are O(rows + cols), ignored.
    per_element_lopt = 5 * 2 + 1
    return 4 * n * per_element.get(name, per_element_lopt)


def fake_grads(params: dict) -> dict:
    """Gradients of scale 0.01, one fixed normal draw per leaf."""
    return jax.tree.map(
        lambda x: 0.01 * jax.random.normal(jax.random.key(1), x.shape, x.dtype), params
    )


def parse_shape(text: str) -> tuple[int, ...]:
    """``"64x4099"`` -> ``(64, 4099)``."""
    try:
        shape = tuple(int(d) for d in text.split("x"))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"not a shape like 64x4099: {text!r}")
    return shape


def image_shape(size: str) -> tuple[int, int, int]:
    """``(height, width, channels)`` of the input images for which the stride-2 convs
    of :func:`make_params` end in exactly as many features as the first dense layer
    takes."""
    convs, dense = SIZES[size]
    cells = dense[0] // convs[-1]
    height = 2 ** (int(np.log2(cells)) // 2)
    width = cells // height
    if height * width * convs[-1] != dense[0]:
        raise ValueError(f"size {size!r}: convs do not end in {dense[0]} features")
    scale = 2 ** (len(convs) - 1)
    return height * scale, width * scale, convs[0]


def model_loss(params: dict, images: jax.Array, labels: jax.Array) -> jax.Array:
    """Cross-entropy of the CNN + MLP that :func:`make_params` describes: 3x3 stride-2
    convs with ReLU, flattened, then dense layers with a scale-only layer norm and
    ReLU between them, logits divided by the temperature."""
    x = images
    convs = sorted(k for k in params if k.startswith("conv"))
    for name in convs:
        layer = params[name]
        x = jax.lax.conv_general_dilated(
            x,
            layer["kernel"],
            (2, 2),
            "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        x = jax.nn.relu(x + layer["bias"])
    x = x.reshape(x.shape[0], -1)
    dense = sorted(k for k in params if k.startswith("dense"))
    for i, name in enumerate(dense):
        layer = params[name]
        x = x @ layer["kernel"] + layer["bias"]
        x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-6)
        x = x * layer["ln_scale"]
        if i < len(dense) - 1:
            x = jax.nn.relu(x)
    logits = x / params["temperature"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def compile_step(opt, params, inputs: tuple, compiler_options: dict, train=False):
    """A callable running one jitted, donated step in place, and its cost analysis.

    ``inputs`` are the gradients, ``(grads,)``, or with ``train`` a batch,
    ``(images, labels)``, from which the step takes the gradients of
    :func:`model_loss` itself.
    """

    def step(p, s, *inputs):
        grads = jax.grad(model_loss)(p, *inputs) if train else inputs[0]
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s

    jitted = jax.jit(step, donate_argnums=(0, 1), compiler_options=compiler_options)
    params = jax.tree.map(jnp.array, params)  # private copies: they get donated
    state = opt.init(params)
    compiled = jitted.lower(params, state, *inputs).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    box = [params, state]

    def call() -> float:
        t0 = time.perf_counter()
        box[0], box[1] = compiled(box[0], box[1], *inputs)
        jax.block_until_ready(box)
        return time.perf_counter() - t0

    for _ in range(2):  # warm-up
        call()
    return call, cost or {}


def time_steps(calls: dict, repeats: dict, interleave: bool) -> dict:
    """Seconds per call of each step: ``repeats[name]`` calls in a row per step, or
    (``interleave``) one call of each step per round, so that every step finds its
    state out of cache, as after a training step's forward and backward pass, and a
    change of load hits all of them alike."""
    times = {name: [] for name in calls}
    if interleave:
        for r in range(max(repeats.values())):
            for name, call in calls.items():
                if r < repeats[name]:
                    times[name].append(call())
    else:
        for name, call in calls.items():
            times[name] = [call() for _ in range(repeats[name])]
    return times


def memory_bandwidth(mbytes: int = 256, repeats: int = 10) -> float:
    """Bytes/s of a large float32 array copied onto itself plus one (read + write),
    jitted with the buffer donated so that no fresh memory is touched: the same
    access pattern as an optimizer step updating its state in place."""
    x = jnp.ones(mbytes * 2**20 // 4, jnp.float32)
    nbytes = x.nbytes
    copy = jax.jit(lambda a: a + 1.0, donate_argnums=0)
    x = copy(x)
    x.block_until_ready()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        x = copy(x)
        x.block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * nbytes / best


def machine() -> str:
    model = cpu_name()
    device = jax.devices()[0]
    where = device.platform
    if where != "cpu":
        where = f"{where}: {len(jax.devices())} x {device.device_kind}"
    return f"{os.cpu_count()} CPU cores ({model}), {where}"


def load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def main(argv=None):
    parser = ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        nargs="*",
        default=list(SIZES),
        choices=list(SIZES),
        help="parameter counts to time",
    )
    parser.add_argument(
        "--shapes",
        nargs="*",
        default=[],
        type=parse_shape,
        help="also time one-tensor pytrees of these shapes, e.g. 64x4099 (not with "
        "--train-step)",
    )
    parser.add_argument(
        "--repeats", type=positive_int, default=20, help="timed calls per optimizer"
    )
    parser.add_argument(
        "--naive-max",
        default="1M",
        choices=list(SIZES),
        help="largest size at which the naive ports are timed (they are slow)",
    )
    parser.add_argument("--only", nargs="*", default=None, help="optimizer names")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="one call of each optimizer per round instead of each one's calls in "
        "a row (state out of cache; ratios are medians of per-round ratios)",
    )
    parser.add_argument(
        "--vector-width",
        type=int,
        default=None,
        choices=(128, 256, 512),
        help="XLA CPU compiler option xla_cpu_prefer_vector_width for every "
        "optimizer's step (XLA's default prefers 256-bit vectors)",
    )
    parser.add_argument(
        "--reassociate",
        action="store_true",
        help="compile every optimizer's step with XLA CPU fast math restricted to "
        "reassociation (stability.lopt.cpu_compiler_options)",
    )
    parser.add_argument(
        "--train-step",
        action="store_true",
        help="time whole training steps (forward, backward, update) of a CNN + MLP "
        "with these parameters; the naive ports are left out",
    )
    parser.add_argument("--batch", type=int, default=128, help="with --train-step")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be a positive integer")
    if args.shapes and args.train_step:
        parser.error("--shapes cannot be used with --train-step")
    unknown = sorted(set(args.only or ()) - set(optimizers()))
    if unknown:
        parser.error(f"--only: unknown optimizer(s) {', '.join(unknown)}")
    options = cpu_compiler_options(
        reassociate=args.reassociate, vector_width=args.vector_width
    )

    print(f"# {machine()}; jax {jax.__version__}; {' '.join(sys.argv)}")
    print(f"# load before: {load()}")
    bandwidth = memory_bandwidth()
    gbs = bandwidth / 1e9
    print(f"# memory bandwidth (jitted in-place x + 1, 256 MiB): {gbs:.1f} GB/s")
    opts = optimizers()
    if args.train_step:
        opts = {k: v for k, v in opts.items() if "naive" not in k}
        print(
            f"# whole training steps, batch {args.batch}: the floor columns are the "
            "optimizer's alone"
        )
    if args.only:
        opts = {k: v for k, v in opts.items() if k in args.only or k == "adam"}
    header = (
        "| size | params | optimizer | ms/step | x Adam | GFLOP/s | "
        "XLA bytes/step | GB/s | compulsory MB | floor ms | x floor |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    naive_limit = list(SIZES).index(args.naive_max)
    for size in args.sizes + args.shapes:
        if isinstance(size, tuple):
            params = {"w": jnp.ones(size, jnp.float32)}
            size = "x".join(map(str, size))
            names = [name for name in opts if "naive" not in name]
        else:
            params = make_params(size)
            names = [
                name
                for name in opts
                if "naive" not in name or list(SIZES).index(size) <= naive_limit
            ]
        n = sum(x.size for x in jax.tree.leaves(params))
        if args.train_step:
            images = jax.random.normal(
                jax.random.key(2), (args.batch, *image_shape(size)), jnp.float32
            )
            labels = jax.random.randint(jax.random.key(3), (args.batch,), 0, 10)
            inputs = (images, labels)
        else:
            inputs = (fake_grads(params),)
        compiled = {
            n: compile_step(opts[n], params, inputs, options, train=args.train_step)
            for n in names
        }
        repeats = {
            n: args.repeats if "naive" not in n else max(3, args.repeats // 4)
            for n in names
        }
        calls = {n: call for n, (call, _) in compiled.items()}
        times = time_steps(calls, repeats, args.interleave)
        adam = np.asarray(times["adam"])
        measured = {}
        for name in names:
            seconds = float(np.median(times[name]))
            cost = compiled[name][1]
            ms = 1e3 * seconds
            measured[name] = ms
            # interleaved: the median of the per-round ratios (robust to load drift)
            if args.interleave:
                rounds = len(times[name])
                ratio = float(np.median(np.asarray(times[name]) / adam[:rounds]))
            else:
                ratio = seconds / float(np.median(adam))
            flops = float(cost.get("flops", np.nan))
            xla_bytes = float(cost.get("bytes accessed", np.nan))
            floor_bytes = compulsory_bytes(name, params)
            floor_ms = 1e3 * floor_bytes / bandwidth
            print(
                f"| {size} | {n:,} | {name} | {ms:.3f} | {ratio:.2f} | "
                f"{flops / seconds / 1e9:.2f} | {xla_bytes / 1e6:.1f} MB | "
                f"{xla_bytes / seconds / 1e9:.1f} | {floor_bytes / 1e6:.1f} | "
                f"{floor_ms:.3f} | {ms / floor_ms:.1f} |",
                flush=True,
            )
        for name in ("star", "small_fc_lopt"):
            if name in measured and f"{name} (naive)" in measured:
                speedup = measured[f"{name} (naive)"] / measured[name]
                print(
                    f"# {size}: {name} fused step is {speedup:.1f}x faster than naive"
                )
    if jax.devices()[0].platform == "cpu":
        print("# GPU (10M parameters, target <= 2x Adam): not yet measured")
    print(f"# load after: {load()}")


if __name__ == "__main__":
    main()
