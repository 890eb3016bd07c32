"""``stability meta-train``: the command-line front of :mod:`stability.lopt.meta_train`.

::

    stability meta-train --task digits_mlp --optimizer star --estimator pes \\
        --steps 3000 --out runs/star [--resume]

Bad arguments are reported in one line on stderr with exit code 2.
"""

import argparse
import functools
import math
import shlex
import sys

from stability.cli._args import writable_dir

__all__ = ["add_parser", "run"]


def _stepsize(text: str):
    """A positive float, or ``auto`` (tune it before meta-training)."""
    if text == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number or 'auto', got {text!r}"
        ) from None


def _bound(text: str):
    """A positive float, ``none`` (the paper's unbounded STAR) or ``auto``."""
    if text.lower() in ("none", "auto"):
        return None if text.lower() == "none" else "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number, 'none' or 'auto', got {text!r}"
        ) from None


def _one_line_error(parser: argparse.ArgumentParser):
    def error(message):
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    return error


def _defaults():
    """The :class:`~stability.lopt.meta_train.MetaTrainConfig` defaults, by field
    (read from the class: nothing is validated or computed)."""
    import dataclasses
    import types

    from stability.lopt.config import MetaTrainConfig

    fields = dataclasses.fields(MetaTrainConfig)
    return types.SimpleNamespace(**{f.name: f.default for f in fields})


def _option(p, d, flag: str, kind, text: str, **kwargs) -> None:
    """``flag`` for the configuration field of the same name, its default from
    ``d`` and named at the end of the help ``text``."""
    value = getattr(d, flag[2:].replace("-", "_"))
    p.add_argument(
        flag, type=kind, default=value, help=f"{text} (default {value})", **kwargs
    )


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``meta-train`` sub-command to an ``add_subparsers()`` object."""
    from stability.lopt.config import (
        DEFAULT_BLACKBOX_BOUND,
        ESTIMATORS,
        OPTIMIZERS,
        SELECTIONS,
    )
    from stability.lopt.tasks import task_names

    d = _defaults()
    p = subparsers.add_parser(
        "meta-train",
        help="meta-train STAR or small_fc_lopt with ES or PES",
        description="Meta-train a learned optimizer (antithetic ES or PES over "
        "truncated unrolls); checkpoints and logs go to --out.",
    )
    p.error = _one_line_error(p)  # one line even under a plain ArgumentParser
    option = functools.partial(_option, p, d)  # a configuration field
    option("--task", None, f"inner task, one of {', '.join(task_names())}")
    option("--optimizer", None, "learned optimizer", choices=OPTIMIZERS)
    option("--estimator", None, "meta-gradient estimator", choices=ESTIMATORS)
    option("--steps", int, "outer steps in all, resumed ones included")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run whose checkpoint is in --out (bit for bit)",
    )
    # the inner episodes, the population and the meta-objective
    option("--horizon", int, "inner steps per episode, the longest with --horizon-min")
    p.add_argument(
        "--horizon-min",
        type=int,
        default=d.horizon_min,
        help="randomised horizons: each episode's length drawn log-uniformly in "
        "[HORIZON_MIN, --horizon] (default: every episode --horizon steps)",
    )
    option("--truncation", int, "inner steps per outer step")
    option("--population", int, "antithetic pairs")
    option("--sigma", float, "std of the perturbations of theta")
    option(
        "--final-weight",
        float,
        "weight of an episode's final loss beside its mean loss in the meta-objective",
    )
    p.add_argument(
        "--blackbox-penalty",
        type=float,
        default=d.blackbox_penalty,
        help="stability term: weight of log(1 + |blackbox step| / |nominal step|) "
        f"at the end of each truncation (default {d.blackbox_penalty}: off)",
    )
    p.add_argument(
        "--blackbox-bound",
        type=_bound,
        default="auto",
        help="STAR's blackbox term bounded per tensor to BOUND times the nominal "
        f"term's RMS, or 'none' for the paper's unbounded STAR (default "
        f"{DEFAULT_BLACKBOX_BOUND} for STAR with its nominal term)",
    )
    p.add_argument(
        "--eval-horizon",
        type=int,
        default=d.eval_horizon,
        help="inner steps of the held-out evaluations that pick best_theta.npz "
        "(default: --horizon); e.g. 10x the horizon keeps the theta that trains "
        "best past it",
    )
    # the outer optimizer, STAR's own options, checkpoints and held-out evaluations
    option("--outer-lr", float, "AdamW learning rate on theta")
    option("--weight-decay", float, "AdamW decoupled weight decay on theta")
    option("--nominal-stepsize", _stepsize, "STAR's nominal step, or 'auto' to tune it")
    p.add_argument("--no-nominal", action="store_true", help="STAR without nominal")
    p.add_argument(
        "--no-precondition", action="store_true", help="no output preconditioning"
    )
    option("--seed", int, "root of every random number of the run")
    option("--checkpoint-every", int, "outer steps between checkpoints")
    p.add_argument(
        "--eval-every", type=int, default=d.eval_every, help="0: no evaluation"
    )
    option("--eval-seeds", int, "held-out inner episodes per evaluation")
    p.add_argument(
        "--select",
        choices=SELECTIONS,
        default=d.select,
        help="held-out score that picks best_theta.npz: training loss at the "
        "horizon (default) or mean meta-loss",
    )
    option("--clip", float, "meta-gradient global-norm clip, inf for none")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)
    return p


def config_from_args(args: argparse.Namespace):
    """The :class:`~stability.lopt.meta_train.MetaTrainConfig` of parsed arguments
    (raises ValueError naming the bad field)."""
    from stability.lopt.config import MetaTrainConfig

    return MetaTrainConfig(
        task=args.task,
        optimizer=args.optimizer,
        estimator=args.estimator,
        steps=args.steps,
        horizon=args.horizon,
        truncation=args.truncation,
        population=args.population,
        sigma=args.sigma,
        outer_lr=args.outer_lr,
        weight_decay=args.weight_decay,
        nominal_stepsize=args.nominal_stepsize,
        nominal=not args.no_nominal,
        precondition=not args.no_precondition,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every,
        eval_seeds=args.eval_seeds,
        clip=args.clip,
        select=args.select,
        horizon_min=args.horizon_min,
        final_weight=args.final_weight,
        blackbox_penalty=args.blackbox_penalty,
        eval_horizon=args.eval_horizon,
        blackbox_bound=args.blackbox_bound,
    )


def run(args: argparse.Namespace) -> int:
    """Run the sub-command; returns the exit code (2 and one stderr line on bad
    arguments, 130 when interrupted: the last checkpoint stays valid)."""
    from stability.lopt.meta_train import meta_train

    try:
        config = config_from_args(args)
        out = writable_dir("--out", args.out)
        if args.resume and not (out / "checkpoint.npz").exists():
            raise ValueError(
                f"--resume: no checkpoint in {out} (nothing to resume; leave out "
                "--resume to start a run there)"
            )
        if config.steps < 1:
            raise ValueError(f"--steps: expected a positive number, got {config.steps}")
        result = meta_train(
            config,
            args.out,
            resume=args.resume,
            progress=not args.no_progress,
            command=shlex.join(["stability", *args.argv]),
        )
    except ValueError as err:
        print(f"stability meta-train: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"stability meta-train: interrupted; continue with --resume --out "
            f"{args.out}",
            file=sys.stderr,
        )
        return 130
    best = (
        f"best held-out {result.config.select} {result.best_score:.4g} "
        f"at step {result.best_step}"
        if math.isfinite(result.best_score)
        else "no held-out evaluation"
    )
    print(
        f"meta-train {config.optimizer}/{config.estimator} on {config.task}: "
        f"{result.steps} steps, {best}, {result.skipped} skipped, "
        f"{result.diverged} diverged; wrote {result.out_dir}"
    )
    return 0
