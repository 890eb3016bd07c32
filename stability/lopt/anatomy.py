r"""What STAR's update is made of, along a long training run.

STAR's step is :math:`f = f_b + f_g` (:func:`stability.lopt.star`): the blackbox term
:math:`f_b = \mu_s\, d\, e^{\mu_e m_b}\, (v + 10^{-6})^{-1/2}` and the nominal term
:math:`f_g = \alpha\, e^{\mu_e m_g}\, \hat g`. :func:`update_anatomy` trains a task with
a STAR and, at checkpoints out to many times the meta-training horizon, splits the
step into the two terms (the blackbox term is the same step with ``nominal=False``
on the same gradient, state and parameters; the nominal term is the rest) and
records their norms, their ratio, their cosines with the gradient, the output
preconditioner's gain :math:`(v + 10^{-6})^{-1/2}`, the learned magnitudes and the
training loss. Plotting lives in :mod:`stability.plotting`.

Why it matters: every feature the MLP sees is normalised per tensor and saturates
once the gradient is small, so the direction :math:`d` need not shrink as the
gradient vanishes, while the gain :math:`(v + 10^{-6})^{-1/2}` grows towards
:math:`10^3`. The nominal term shrinks with the momenta; the blackbox term need not.
A ratio :math:`\|f_b\| / \|f_g\|` that grows along training, with a cosine near
zero, is a step that no longer follows the gradient: the optimizer's fixed point
is no longer the minimiser.

Calling pattern::

    theta = load_theta("stability/lopt/thetas/star.npz")
    rec = update_anatomy(theta, "digits_mlp", steps=100_000, seeds=[0, 1, 2],
                         nominal_stepsize=0.0316)
    rec.ratio[:, -1], rec.loss[:, -1]
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stability._validation import check_int
from stability.lopt import _features, _unroll
from stability.lopt.star import ADAFACTOR_DECAYS, MOMENTUM_DECAYS, RMS_DECAYS, star
from stability.lopt.theta import validate_theta

__all__ = [
    "AnatomyRecord",
    "checkpoint_steps",
    "from_json",
    "learned_decays",
    "to_json",
    "update_anatomy",
]

F32 = jnp.float32


class AnatomyRecord(NamedTuple):
    """STAR's update split into its two terms, per seed and checkpoint.

    Arrays are ``(seeds, checkpoints)`` unless said otherwise; norms are global L2
    norms over every parameter; cosines are with the gradient ``g`` of the step's
    minibatch (a step ``f`` is applied as ``p <- p - f``, so a cosine of 1 is
    steepest descent).

    Attributes:
      steps: ``(C,)`` training steps of the checkpoints (the step taken there).
      loss: training-split loss at the checkpoint's parameters.
      initial_loss: ``(seeds,)`` training-split loss at step 0.
      diverged: loss non-finite or above ``initial_loss``.
      grad_norm: ``||g||``.
      param_norm: ``||p||``, the parameters' norm (a blackbox term that does not
        vanish makes it drift).
      blackbox_norm, nominal_norm, total_norm: ``||f_b||``, ``||f_g||``, ``||f||``.
      ratio: ``||f_b|| / ||f_g||`` (``inf`` without a nominal term).
      cos_blackbox, cos_nominal, cos_total: cosines of ``f_b``, ``f_g``, ``f`` with
        ``g``.
      gain_median, gain_max: median and maximum over parameters of the output
        preconditioner's gain ``(v + 1e-6)^{-1/2}`` after the step's update.
      blackbox_direction: RMS over parameters of ``d exp(exp_mult m_b)``, the
        blackbox term without its preconditioner and ``step_mult``.
      nominal_magnitude: median over parameters of ``exp(exp_mult m_g)``.
      decays: the learned decays ``{"momentum": (3,), "rms": float, "adafactor":
        (3,)}``.
      config: the STAR keyword arguments used.
    """

    steps: np.ndarray
    loss: np.ndarray
    initial_loss: np.ndarray
    diverged: np.ndarray
    grad_norm: np.ndarray
    param_norm: np.ndarray
    blackbox_norm: np.ndarray
    nominal_norm: np.ndarray
    total_norm: np.ndarray
    ratio: np.ndarray
    cos_blackbox: np.ndarray
    cos_nominal: np.ndarray
    cos_total: np.ndarray
    gain_median: np.ndarray
    gain_max: np.ndarray
    blackbox_direction: np.ndarray
    nominal_magnitude: np.ndarray
    decays: dict
    config: dict


def checkpoint_steps(steps: int, per_decade: int = 8) -> np.ndarray:
    """Log-spaced checkpoints in ``[0, steps)``: 0, then ``per_decade`` per decade.

    >>> checkpoint_steps(100, per_decade=2).tolist()
    [0, 1, 3, 10, 31, 99]
    """
    steps = check_int("steps", steps, low=1)
    per_decade = check_int("per_decade", per_decade, low=1)
    if steps == 1:
        return np.zeros(1, np.int64)
    n = int(np.ceil(np.log10(steps - 1) * per_decade)) + 1
    grid = np.unique(np.round(np.logspace(0, np.log10(steps - 1), n)).astype(np.int64))
    return np.concatenate([[0], grid])


def learned_decays(theta: dict) -> dict:
    """The decays a STAR or small_fc_lopt theta uses (float32, as the step does)."""
    d = _features.decays_from_offsets(
        theta, F32, (MOMENTUM_DECAYS, RMS_DECAYS, ADAFACTOR_DECAYS)
    )
    return {
        "momentum": np.asarray(d.momentum, np.float64),
        "rms": float(d.rms),
        "adafactor": np.asarray(d.adafactor, np.float64),
    }


def _flat(tree) -> jax.Array:
    return jnp.concatenate([jnp.ravel(x).astype(F32) for x in jax.tree.leaves(tree)])


def _cos(a, b):
    """Cosine of two vectors, 0 if either is zero; each is scaled by its largest
    entry first, so that float32 squares of tiny gradients do not underflow."""

    def unit(x):
        scale = jnp.max(jnp.abs(x))
        x = x / jnp.where(scale > 0, scale, 1)
        return x / jnp.where(scale > 0, jnp.linalg.norm(x), 1)

    return jnp.vdot(unit(a), unit(b))


def _splitter(theta, task, inner, star_kwargs):
    """``(params, state, key, t) -> {quantity: value}``: STAR's step at step ``t``
    of a seed split into its nominal and blackbox terms, with their gains."""
    full = star(theta, **star_kwargs)
    unbounded = {k: v for k, v in star_kwargs.items() if k != "blackbox_bound"}
    free = star(theta, **unbounded)
    blackbox = star(theta, **{**unbounded, "nominal": False})
    nominal_on = star_kwargs.get("nominal", True)
    alpha = float(star_kwargs.get("nominal_stepsize", 1e-3))
    step_mult = float(star_kwargs.get("step_mult", 1e-3))

    def split(params, state, key, t):
        g = jax.grad(task.loss)(params, inner.batch(key, t))
        u_full, new_state = full.update(g, state, params)
        u_free, _ = free.update(g, state, params)
        u_black, _ = blackbox.update(g, state, params)
        gv, f = _flat(g), -_flat(u_full)
        # the nominal term: the unbounded step less its blackbox term; the blackbox
        # term taken (bounded or not): the step less the nominal term
        f_g = _flat(u_black) - _flat(u_free)
        f_b = f - f_g
        gain = _flat(jax.lax.rsqrt(_flat(new_state.second_moment) + 1e-6))
        g_hat = sum(_flat(m) for m in new_state.momentum) / 3 * gain
        with jax.numpy_dtype_promotion("standard"):
            nb, ng = jnp.linalg.norm(f_b), jnp.linalg.norm(f_g)
            precond = gain if star_kwargs.get("precondition", True) else 1.0
            direction = f_b / (step_mult * precond)
            magnitude = jnp.where(g_hat != 0, f_g / (alpha * g_hat), jnp.nan)
        return {
            "loss": task.train_loss(params),
            "grad_norm": jnp.linalg.norm(gv),
            "param_norm": jnp.linalg.norm(_flat(params)),
            "blackbox_norm": nb,
            "nominal_norm": ng,
            "total_norm": jnp.linalg.norm(f),
            "ratio": nb / ng if nominal_on else jnp.inf,
            "cos_blackbox": _cos(f_b, gv),
            "cos_nominal": _cos(f_g, gv),
            "cos_total": _cos(f, gv),
            "gain_median": jnp.median(gain),
            "gain_max": jnp.max(gain),
            "blackbox_direction": jnp.sqrt(jnp.mean(direction**2)),
            "nominal_magnitude": jnp.nanmedian(magnitude),
        }

    return split


def update_anatomy(
    theta: dict,
    task="digits_mlp",
    *,
    steps: int | None = None,
    checkpoints: Sequence[int] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    **star_kwargs,
) -> AnatomyRecord:
    """Train ``task`` with STAR and split its update at checkpoints.

    Seed ``s`` trains from the initial parameters and minibatches of held-out seed
    ``s`` of :func:`stability.lopt.evaluate.evaluate` (same keys, so the losses are
    those of the evaluation's runs). Training runs in float32, all seeds in one
    ``vmap``.

    Args:
      theta: STAR meta-parameters (3 heads).
      task: a :class:`~stability.lopt.tasks.Task` or its name.
      steps: train this many steps with the default log-spaced checkpoints
        (:func:`checkpoint_steps`); or give ``checkpoints``.
      checkpoints: increasing steps at which to split the update.
      seeds: held-out seeds (ints).
      **star_kwargs: :func:`stability.lopt.star`'s options (``nominal_stepsize``,
        ``precondition``, ``nominal``, ...).
    Returns:
      an :class:`AnatomyRecord`.
    """
    from stability.lopt.tasks import get_task

    validate_theta(theta, heads=3)
    task = get_task(task) if isinstance(task, str) else task
    if (steps is None) == (checkpoints is None):
        raise ValueError("steps, checkpoints: give exactly one")
    if checkpoints is None:
        checkpoints = checkpoint_steps(steps)
    points = np.asarray(checkpoints, np.int64).reshape(-1)
    if points.size == 0 or points[0] < 0 or np.any(np.diff(points) <= 0):
        raise ValueError(
            f"checkpoints: expected increasing non-negative steps, got {points}"
        )
    from stability.lopt.evaluate import HELD_OUT_ROOT, _check_seeds, _run_keys

    seeds = _check_seeds(seeds)
    theta = jax.tree.map(lambda x: jnp.asarray(x, F32), dict(theta))
    full = star(theta, **star_kwargs)
    inner = _unroll.InnerLoop(task, lambda _: full, 1, np.inf)
    split = _splitter(theta, task, inner, star_kwargs)
    keys = _unroll.unwrap(_run_keys(HELD_OUT_ROOT, seeds))

    def advance(params, state, key, start, stop):
        def body(t, carry):
            params, state = carry
            _, params, state = inner.update(None, params, state, inner.batch(key, t))
            return params, state

        return jax.lax.fori_loop(start, stop, body, (params, state))

    advance_all = jax.jit(jax.vmap(advance, (0, 0, 0, None, None)))
    split_all = jax.jit(jax.vmap(split, (0, 0, 0, None)))
    params, state = jax.vmap(lambda k: inner.fresh(None, k))(keys)
    rows, t = [], 0
    for target in points:
        params, state = advance_all(params, state, keys, t, int(target))
        t = int(target)
        rows.append(jax.device_get(split_all(params, state, keys, jnp.int32(t))))
    out = {
        k: np.stack([r[k] for r in rows], axis=1).astype(np.float64) for k in rows[0]
    }
    if points[0] == 0:
        initial = out["loss"][:, 0]
    else:
        fresh, _ = jax.vmap(lambda k: inner.fresh(None, k))(keys)
        initial = np.asarray(jax.vmap(task.train_loss)(fresh), np.float64)
    diverged = ~np.isfinite(out["loss"]) | (out["loss"] > initial[:, None])
    return AnatomyRecord(
        steps=points,
        initial_loss=initial,
        diverged=diverged,
        decays=learned_decays(theta),
        config=dict(star_kwargs),
        **out,
    )


def to_json(rec: AnatomyRecord, digits: int = 6) -> dict:
    """A JSON-friendly dict of a record: arrays as lists rounded to ``digits``
    significant digits, non-finite numbers as ``None``."""
    from stability.lopt.io import json_safe

    out = rec._asdict()
    out["decays"] = dict(rec.decays)
    return json_safe(out, array_digits=digits)


def from_json(d: dict) -> AnatomyRecord:
    """Inverse of :func:`to_json` (``None`` read back as NaN)."""
    fields = {
        k: np.array(d[k], dtype=np.float64)
        for k in AnatomyRecord._fields
        if k not in ("decays", "config")
    }
    fields["steps"] = np.asarray(d["steps"], np.int64)
    fields["diverged"] = np.asarray(d["diverged"], bool)
    fields["decays"] = {k: np.asarray(v, np.float64) for k, v in d["decays"].items()}
    fields["config"] = dict(d["config"])
    return AnatomyRecord(**fields)


def star_options(metadata: dict) -> dict:
    """:func:`stability.lopt.star` keyword arguments from a theta's sidecar."""
    config = metadata.get("config") or {}
    keys = ("nominal_stepsize", "nominal", "precondition", "blackbox_bound")
    return {k: config[k] for k in keys if config.get(k) is not None}


def main(argv=None) -> int:
    """``python -m stability.lopt.anatomy OUT.json NAME=THETA.npz ... [--steps N]``:
    the anatomy of each theta (configured by its sidecar; ``NAME=nominal:THETA.npz``
    is that theta's nominal term alone, its output layer zeroed) on ``digits_mlp``,
    held-out seeds 0, 1, 2, added to the JSON record ``OUT.json`` (created if
    missing; rewritten atomically after each run, so an interrupted call keeps the
    runs it finished)."""
    import argparse
    import json
    import pathlib

    from stability.lopt import io
    from stability.lopt.io import atomic_write
    from stability.lopt.theta import zero_output_layer

    p = argparse.ArgumentParser(prog="python -m stability.lopt.anatomy")
    p.add_argument("out")
    p.add_argument("runs", nargs="+", metavar="NAME=THETA")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--task", default="digits_mlp")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    record = {"task": args.task, "steps": args.steps, "runs": {}}
    if out.exists():  # add to (or replace runs of) an earlier record
        record = json.loads(out.read_text())
        if (record["task"], record["steps"]) != (args.task, args.steps):
            p.error(f"{out} holds {record['steps']} steps on {record['task']}")
    for item in args.runs:
        name, _, path = item.partition("=")
        nominal_only = path.startswith("nominal:")
        path = path.removeprefix("nominal:")
        theta = io._read_theta(path)
        options = star_options(io.load_metadata(path))
        if nominal_only:
            theta = zero_output_layer(theta)
            options.pop("blackbox_bound", None)
        rec = update_anatomy(theta, args.task, steps=args.steps, **options)
        record["runs"][name] = {
            "theta": str(path),
            "nominal_only": nominal_only,
            **to_json(rec),
        }
        print(name, "final loss", rec.loss[:, -1], flush=True)
        atomic_write(out, lambda f: f.write(json.dumps(record) + "\n"), mode="w")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
