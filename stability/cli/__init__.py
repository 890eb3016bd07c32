"""Command line: ``stability reproduce | region | meta-train | evaluate | edge |
bench``.

Every command reports a failure in one line on stderr and exits with code 2: bad
arguments, unreadable inputs (a missing or corrupt theta, a sidecar that is not
JSON) and unwritable outputs (checked before any computation where the command
can). An interrupted command exits with code 130.

Start-up is kept light: the parser imports only the module of the command given,
and JAX, NumPy and matplotlib load when a command runs, so ``--help`` and argument
errors answer at once (meta-train reads its defaults from
:class:`~stability.lopt.config.MetaTrainConfig`, whose module loads no JAX).

This package owns :func:`main` and the command table; each command is a module with
``add_parser(subparsers)``, which registers the command and its ``run(args)``:
:mod:`~stability.cli.region`, :mod:`~stability.cli.meta_train`,
:mod:`~stability.cli.evaluate`, :mod:`~stability.cli.edge`,
:mod:`~stability.cli.bench` and :mod:`stability.reproduce`. What the commands share
(the parser class, argument types, output checks) is in :mod:`stability.cli._args`
and re-exported here; :mod:`~stability.cli.records` condenses run directories into the
shipped records (``python -m stability.cli.records``).
"""

import importlib
import sys
import warnings

from stability.cli._args import ArgumentParser as ArgumentParser
from stability.cli._args import nonnegative_int as nonnegative_int
from stability.cli._args import positive_int as positive_int
from stability.cli._args import writable_dir as writable_dir
from stability.cli._args import writable_file as writable_file
from stability.cli._args import write_atomic as write_atomic

#: command -> (the module whose ``add_parser`` registers it, its line of help)
_COMMANDS = {
    "reproduce": (
        "stability.reproduce",
        "regenerate every figure and the lemma report",
    ),
    "region": (
        "stability.cli.region",
        "stability region of a per-mode optimizer family",
    ),
    "meta-train": ("stability.cli.meta_train", "meta-train STAR or small_fc_lopt"),
    "evaluate": (
        "stability.cli.evaluate",
        "evaluate a meta-trained optimizer against tuned baselines",
    ),
    "edge": (
        "stability.cli.edge",
        "track the sharpness against the optimizer's threshold along training",
    ),
    "bench": ("stability.cli.bench", "run a benchmark script from a source checkout"),
}

#: names that moved into a command's module -> that module (deprecated aliases here)
_MOVED = {
    "REGION_FAMILIES": "stability.cli.region",
    "REGION_OPTIONS": "stability.cli.region",
    "MAX_GRID_COST": "stability.cli.region",
    "MAX_CERTIFIED_POINTS": "stability.cli.region",
    "CERTIFIED_FLAGS": "stability.cli.region",
    "MULTIPLIERS": "stability.cli.region",
    "AGGMO_BETAS": "stability.cli.region",
    "PLOT_FORMATS": "stability.cli.region",
    "BENCHMARKS": "stability.cli.bench",
}


def __getattr__(name):
    if name in _MOVED:
        warnings.warn(
            f"stability.cli.{name} is deprecated: use {_MOVED[name]}.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'stability.cli' has no attribute {name!r}")


def _command(argv) -> str | None:
    """The sub-command named in ``argv`` (its first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _parser(commands=None) -> ArgumentParser:
    """The ``stability`` parser; only the commands in ``commands`` (default: all)
    get their full parsers (importing their modules), the others just a name."""
    p = ArgumentParser(
        prog="stability",
        description="Optimizers as dynamical systems: the paper's figures, "
        "stability regions, and meta-training and evaluation of learned optimizers.",
        epilog="Run `stability COMMAND --help` for the options of a command.",
    )
    sub = p.add_subparsers(
        dest="command", required=True, parser_class=ArgumentParser, metavar="COMMAND"
    )
    for name, (module, help_text) in _COMMANDS.items():
        if commands is not None and name not in commands:
            sub.add_parser(name, help=help_text, add_help=False)
        else:
            importlib.import_module(module).add_parser(sub)
    return p


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    if isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command(argv)
    args = _parser((command,) if command in _COMMANDS else ()).parse_args(argv)
    args.argv = argv  # what a command records as itself (``stability ARGV``)
    try:
        return int(args.run(args) or 0)
    except (ValueError, OSError, ImportError, RuntimeError, MemoryError) as err:
        print(f"stability {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stability {args.command}: interrupted", file=sys.stderr)
        return 130
