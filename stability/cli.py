"""Command line: ``stability reproduce | region | meta-train | evaluate | bench``.

Every command reports a failure in one line on stderr and exits with code 2.
"""

import argparse
import json
import sys

import numpy as np


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _axis(text):
    """``start:stop:num`` -> a linspace, or a single number."""
    parts = text.split(":")
    try:
        if len(parts) == 1:
            return float(parts[0])
        if len(parts) == 3:
            return np.linspace(float(parts[0]), float(parts[1]), int(parts[2]))
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected NUMBER or START:STOP:NUM, got {text!r}")


def _decays(text):
    """``b1,b2,...`` -> a tuple of floats."""
    try:
        return tuple(float(b) for b in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _add_region(sub):
    p = sub.add_parser("region", help="stability region of a per-mode optimizer family")
    p.add_argument(
        "--family",
        required=True,
        choices=["gd", "nominal", "heavy_ball", "ema_momentum", "aggmo"],
    )
    for name in ("lr", "curvature", "beta", "alpha", "p"):
        p.add_argument(f"--{name}", type=_axis, help="NUMBER or START:STOP:NUM")
    p.add_argument("--betas", type=_decays, help="comma-separated decays for aggmo")
    p.add_argument("--precondition", action="store_true")
    p.add_argument("--json", dest="json_out", help="write the region record as JSON")
    p.set_defaults(run=_run_region)


def _run_region(args):
    import jax

    jax.config.update("jax_enable_x64", True)
    from stability import analyses

    grid = {
        k: getattr(args, k)
        for k in analyses.regions.FAMILY_ARGS[args.family]
        if getattr(args, k) is not None
    }
    region = analyses.stability_region(
        args.family, precondition=args.precondition, betas=args.betas, **grid
    )
    frac = float(np.mean(region.stable))
    print(
        f"{args.family}: grid {region.rho.shape}, stable fraction {frac:.4f}, "
        f"rho in [{region.rho.min():.6g}, {region.rho.max():.6g}]"
    )
    if args.json_out:
        record = {
            "family": region.family,
            "axes": {k: v.tolist() for k, v in region.axes.items()},
            "fixed": region.fixed,
            "rho": region.rho.tolist(),
        }
        with open(args.json_out, "w") as f:
            json.dump(record, f)
    return 0


def _optional(sub, module, adder, runner, name, help_text):
    """Register a sub-command implemented in another module, if that module exists."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if not err.name or not module.startswith(err.name.split(".")[0]):
            raise
        mod = None
    if mod is not None and hasattr(mod, adder):
        getattr(mod, adder)(sub)
        parser = sub.choices[name]
        if parser.get_default("run") is None:
            parser.set_defaults(run=getattr(mod, runner))
        return
    p = sub.add_parser(name, help=f"{help_text} (not available in this build)")
    p.set_defaults(run=lambda args: _unavailable(name))


def _unavailable(name):
    print(f"stability {name}: not available in this build", file=sys.stderr)
    return 2


def _add_bench(sub):
    p = sub.add_parser("bench", help="run a benchmark script from a source checkout")
    p.add_argument("name", choices=["regions", "step", "meta_train"])
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the script")
    p.set_defaults(run=_run_bench)


def _run_bench(args):
    import pathlib
    import runpy

    root = pathlib.Path(__file__).resolve().parent.parent
    script = root / "benchmarks" / f"bench_{args.name}.py"
    if not script.exists():
        raise FileNotFoundError(f"{script} (benchmarks live in a source checkout)")
    sys.argv = [str(script), *args.rest]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def _parser():
    p = _Parser(prog="stability", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _optional(
        sub,
        "stability.reproduce",
        "add_parser",
        "run",
        "reproduce",
        "regenerate every figure and the lemma report",
    )
    _add_region(sub)
    _optional(
        sub,
        "stability.lopt._cli_meta",
        "add_meta_train_parser",
        "run_meta_train",
        "meta-train",
        "meta-train STAR or small_fc_lopt",
    )
    _optional(
        sub,
        "stability.lopt._cli_eval",
        "add_evaluate_parser",
        "run_evaluate",
        "evaluate",
        "evaluate a meta-trained optimizer against tuned baselines",
    )
    _add_bench(sub)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    args.argv = argv  # what a command records as itself (``stability ARGV``)
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as err:
        print(f"stability {args.command}: error: {err}", file=sys.stderr)
        return 2
