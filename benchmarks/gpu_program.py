"""What XLA compiles for a GPU, read on a machine without one.

The step benchmark's GPU row (``bench_step.py``) needs a GPU. Until one is lent,
this script compiles the same steps (the same pytrees and optimizers) for an NVIDIA
H100 through XLA's deviceless compilation (a PJRT topology built from a description
of the target instead of a device) and reads the optimised HLO: how many kernels a
step launches and how many bytes those kernels read and write. These are properties
of the compiled program, not timings. Bytes over the H100's memory bandwidth is a
floor on the step's time; the launch cost of many small kernels is not modelled.

Columns: kernels (fusions, library calls and copies in the entry computation), how
many of them touch under 100 kB, the bytes all of them read and write (each operand
and result counted once per kernel), that as a multiple of Adam's, the time those
bytes take at the target's bandwidth, the full-size arrays the largest leaf's
kernels read and write per element (Adam: read p, g, m, v; write p, m, v = 7), and
the compile time.

It needs JAX's CUDA plugin at the installed jax's version, best in a separate
virtual environment (the CUDA libraries take several GB)::

    v=$(python -c "import jax; print(jax.__version__)")
    python3 -m venv /tmp/gpu && /tmp/gpu/bin/pip install "jax[cuda12]==$v" -e .
    /tmp/gpu/bin/python benchmarks/gpu_program.py --sizes 1M 10M

No GPU is used even where there is one (``CUDA_VISIBLE_DEVICES=-1``).
"""

import os

# before jax is imported: no device, and no CUDA driver check (there is no driver)
os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["JAX_SKIP_CUDA_CONSTRAINTS_CHECK"] = "1"

import argparse  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import optax  # noqa: E402
from bench_step import SIZES, make_params, optimizers  # noqa: E402
from jax.experimental import topologies  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

# NVIDIA H100 SXM (80 GB HBM3): XLA's GpuTargetConfig in text format; bandwidth in
# bytes/s. The runtime and cuDNN versions only have to be ones the plugin accepts.
H100 = """
gpu_device_info {
  threads_per_block_limit: 1024
  threads_per_warp: 32
  shared_memory_per_block: 49152
  shared_memory_per_block_optin: 232448
  shared_memory_per_core: 233472
  threads_per_core_limit: 2048
  core_count: 132
  fpus_per_core: 128
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  memory_bandwidth: 3352320000000
  l2_cache_size: 52428800
  clock_rate_ghz: 1.98
  device_memory_size: 84929347584
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
  cuda_compute_capability { major: 9 minor: 0 }
}
platform_name: "CUDA"
dnn_version_info { major: 9 minor: 8 }
runtime_version { major: 12 minor: 9 }
device_description_str: "NVIDIA H100 80GB HBM3"
"""
BANDWIDTH = float(re.search(r"memory_bandwidth: (\d+)", H100).group(1))

ITEMSIZE = {"pred": 1, "s8": 1, "u8": 1, "bf16": 2, "f16": 2, "f32": 4, "s32": 4}
ITEMSIZE |= {"u32": 4, "f64": 8, "s64": 8, "u64": 8}
# entry-computation instructions that launch nothing
FREE = {"parameter", "get-tuple-element", "bitcast", "tuple", "constant"}
INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (.+?) ([a-z][\w\-]*)\((.*)$")


def arrays(type_text: str) -> list[tuple[str, tuple[int, ...]]]:
    """``(dtype, shape)`` of every array in an HLO type, e.g. ``(f32[2,3], s32[])``."""
    found = re.findall(r"\b([a-z]+\d*)\[([\d,]*)\]", type_text)
    return [(d, tuple(int(n) for n in s.split(",") if n)) for d, s in found]


def nbytes(type_text: str) -> int:
    return sum(ITEMSIZE[d] * math.prod(shape) for d, shape in arrays(type_text))


def kernels(hlo_text: str) -> list[dict]:
    """The entry computation's kernels: name, op, bytes read and written, and the
    types of their operands and results."""
    entry = hlo_text[hlo_text.index("\nENTRY") :].splitlines()[1:]
    types, found = {}, []
    for line in entry:
        match = INSTRUCTION.match(line)
        if match is None:
            continue
        name, type_text, op, rest = match.groups()
        types[name] = type_text
        if op in FREE:
            continue
        # operands: up to the closing parenthesis of the call (attributes follow)
        operand_text = rest.split("), ", 1)[0]
        operands = [types.get(o, "") for o in re.findall(r"%([\w.\-]+)", operand_text)]
        found.append(
            {
                "name": name,
                "op": op,
                "read": sum(nbytes(t) for t in operands),
                "written": nbytes(type_text),
                "types": operands + [type_text],
            }
        )
    return found


def compile_for_gpu(opt, params, sharding):
    def step(p, s, g):
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s

    def spec(x):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    state = jax.eval_shape(opt.init, params)
    args = jax.tree.map(spec, (params, state, params))
    t0 = time.perf_counter()
    text = jax.jit(step, donate_argnums=(0, 1)).lower(*args).compile().as_text()
    return text, time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", nargs="*", default=["1M", "10M"], choices=list(SIZES)
    )
    parser.add_argument("--only", nargs="*", default=None, help="optimizer names")
    parser.add_argument(
        "--dump", default=None, help="folder to write each step's optimised HLO to"
    )
    args = parser.parse_args(argv)
    topology = topologies.get_topology_desc(
        platform="cuda", target_config=H100, topology="1x1x1"
    )
    mesh = topologies.make_mesh(topology, (1,), ("devices",))
    sharding = NamedSharding(mesh, PartitionSpec())
    opts = {k: v for k, v in optimizers().items() if "naive" not in k}
    if args.only:
        opts = {k: v for k, v in opts.items() if k in args.only or k == "adam"}
    print(f"# jax {jax.__version__}, deviceless compilation for an NVIDIA H100 (SXM)")
    header = (
        "| size | params | optimizer | kernels | under 100 kB | MB read + written | "
        "x Adam | floor us | largest leaf: arrays per element | compile s |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for size in args.sizes:
        params = make_params(size)
        n = sum(x.size for x in jax.tree.leaves(params))
        largest = max(jax.tree.leaves(params), key=lambda x: x.size)
        big = (largest.dtype.name.replace("float", "f"), tuple(largest.shape))
        adam_bytes = None
        for name, opt in opts.items():
            text, seconds = compile_for_gpu(opt, params, sharding)
            if args.dump:
                os.makedirs(args.dump, exist_ok=True)
                path = os.path.join(args.dump, f"{size}_{name}.hlo.txt")
                with open(path, "w") as f:
                    f.write(text)
            found = kernels(text)
            moved = sum(k["read"] + k["written"] for k in found)
            adam_bytes = moved if name == "adam" else adam_bytes
            small = sum(k["read"] + k["written"] < 100_000 for k in found)
            passes = sum(arrays(t).count(big) for k in found for t in k["types"])
            print(
                f"| {size} | {n:,} | {name} | {len(found)} | {small} | "
                f"{moved / 1e6:.1f} | {moved / adam_bytes:.2f} | "
                f"{1e6 * moved / BANDWIDTH:.1f} | {passes} | {seconds:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
