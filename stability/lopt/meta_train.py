r"""Meta-training STAR and small_fc_lopt: antithetic ES or PES over truncated unrolls.

This module owns the run's configuration, its loop and the keep-best evaluation;
the compiled outer step is :mod:`~stability.lopt._outer`'s, the run directory's
files :mod:`~stability.lopt._run_dir`'s. Calling pattern::

    config = MetaTrainConfig(task="digits_mlp", estimator="pes", steps=2000)
    result = meta_train(config, "runs/star")          # checkpoints, logs, thetas
    result = meta_train(config, "runs/star", resume=True)  # after a kill: same bits
    theta = load_theta("runs/star/best_theta.npz")

One outer step is one truncation of ``truncation`` inner steps for a population of
``population`` antithetic pairs (``2 * population`` inner training runs), compiled as
one jitted program: a ``lax.scan`` over inner steps of a step ``vmap``-ped over the
members (minibatch sampling inside), then the ES or PES estimate (see
:mod:`stability.lopt._unroll`), then AdamW on theta (decoupled weight decay, the
paper's regulariser) after clipping the meta-gradient's global norm. A non-finite
meta-gradient leaves theta and the outer optimizer untouched and is counted
(``skipped``); an inner run whose loss becomes non-finite or exceeds
``DIVERGED_LOSS_FACTOR * log(classes)`` restarts with its antithetic partner
(counted as ``diverged``); runs restart at the horizon.

The meta-loss is the mean over the truncation's inner steps of the log of the
training loss on the step's minibatch, clipped as upstream clips classification
losses: NaN and inf count as :math:`1.5 \log(\text{classes})`, the clip range is
``[1e-6, 1.5 log(classes)]`` (the floor keeps the log finite; float32 cross-entropy
is not resolved much below it).

STAR meta-training starts from a zero output layer, where STAR equals its nominal
term (upstream's random output layer makes the untrained STAR diverge);
small_fc_lopt starts from upstream's random initialisation (with a zero output layer
it would not move). ``nominal_stepsize`` is a hyperparameter of the run: the default
is the value :func:`tune_nominal_stepsize` picks on ``digits_mlp`` at T = 1000, and
``None`` tunes it for the configured task and horizon before meta-training starts.

Every ``eval_every`` outer steps the current theta runs ``eval_seeds`` full inner
episodes of ``horizon`` steps from held-out seeds (keys no training episode uses) and
the best theta so far is kept. ``select`` says what "best" means: ``"train_loss"``
(the default), the lowest training-split loss at the end of the episode averaged over
the seeds, which is what an evaluation reports and which a single failed seed
dominates; or ``"objective"``, the lowest mean meta-loss (the mean log loss along the
episode), which rewards very small losses on some seeds and forgives a stalled one.
The candidates are the evaluations at step 0 and at multiples of ``eval_every``; a
run whose ``steps`` is no such multiple also evaluates its last step (logged with
``"final": true``) without letting it compete, so that the kept theta does not
depend on where a run was split into resumed pieces. ``eval_horizon`` longer than
``horizon`` keeps the theta that trains best past the meta-training horizon.

Files in ``out_dir``: ``checkpoint.npz`` (theta, outer optimizer state, estimator
state with the inner runs and PES accumulators, the inner RNG keys, step, counters,
best theta; written atomically every ``checkpoint_every`` steps), ``log.jsonl`` and
``log.csv`` (one row per outer step), ``eval.jsonl`` (held-out evaluations),
``theta.npz`` (final) and ``best_theta.npz``, each with a JSON sidecar (command, git
commit, date, configuration, final metrics). ``resume=True`` restarts from the
checkpoint, drops log rows written after it, and continues bit for bit.

Scale-out: the population's pair axis is sharded over the devices with
``jax.sharding`` (the largest divisor of ``population`` not above
``jax.device_count()``); results equal the one-device run up to the order of the
float32 sum over pairs. To use several CPU devices on one host set
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before importing JAX. On
several hosts, call ``jax.distributed.initialize()`` in every process before
:func:`meta_train` (same configuration everywhere); ``jax.devices()`` is then global
and the same mesh spans the hosts. Every process writes the same files, so give each
process its own ``out_dir`` or let only ``jax.process_index() == 0`` keep them. (The
multi-host path has not been run here.)
"""

import dataclasses
import datetime
import functools
import math
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stability.lopt import _outer, _run_dir
from stability.lopt._outer import TrainState as TrainState
from stability.lopt._run_dir import LOG_FIELDS as _LOG_FIELDS  # noqa: F401 (tests)
from stability.lopt._unroll import DIVERGED_LOSS_FACTOR as DIVERGED_LOSS_FACTOR
from stability.lopt.baselines import tune_nominal_stepsize as tune_nominal_stepsize
from stability.lopt.config import DEFAULT_BLACKBOX_BOUND as DEFAULT_BLACKBOX_BOUND
from stability.lopt.config import DEFAULT_NOMINAL_STEPSIZE as DEFAULT_NOMINAL_STEPSIZE
from stability.lopt.config import ESTIMATORS as ESTIMATORS
from stability.lopt.config import OPTIMIZERS as OPTIMIZERS
from stability.lopt.config import SELECTIONS as SELECTIONS
from stability.lopt.config import MetaTrainConfig as MetaTrainConfig

__all__ = [
    "DEFAULT_BLACKBOX_BOUND",
    "DEFAULT_NOMINAL_STEPSIZE",
    "DIVERGED_LOSS_FACTOR",
    "MetaTrainConfig",
    "MetaTrainResult",
    "evaluate_theta",
    "meta_gradient",
    "meta_train",
    "tune_nominal_stepsize",
]

F32 = jnp.float32


class MetaTrainResult(NamedTuple):
    """What :func:`meta_train` returns.

    Attributes:
      theta: final theta (NumPy float32 dict).
      best_theta: theta with the best held-out evaluation (the final one when no
        evaluation ran).
      best_score: its held-out score, ``config.select`` (``nan`` without
        evaluations).
      best_step: the outer step it was reached at (``-1`` without evaluations).
      steps: outer steps done.
      skipped: non-finite meta-gradients skipped.
      diverged: inner runs restarted after diverging.
      config: the configuration actually run (nominal step size resolved).
      out_dir: where the files are.
    """

    theta: dict
    best_theta: dict
    best_score: float
    best_step: int
    steps: int
    skipped: int
    diverged: int
    config: MetaTrainConfig
    out_dir: pathlib.Path


# Fields the compiled program does not depend on (the estimator is a runtime flag).
_RUNTIME_FIELDS = {
    "steps": 0,
    "estimator": "pes",
    "checkpoint_every": 1,
    "eval_every": 0,
    "select": "train_loss",
}


def _program(config: MetaTrainConfig, devices=None) -> _outer.Program:
    """A cached :class:`~stability.lopt._outer.Program`: runs that differ only in
    the fields above (a resumed run, a longer run, ES vs PES) share the compiled
    functions."""
    key = dataclasses.replace(_resolve_bound(config), **_RUNTIME_FIELDS)
    return _cached_program(key, None if devices is None else tuple(devices))


@functools.lru_cache(maxsize=8)
def _cached_program(config: MetaTrainConfig, devices) -> _outer.Program:
    return _outer.Program(config, devices)


def evaluate_theta(
    theta, config: MetaTrainConfig | None = None, *, seeds: int | None = None
) -> dict:
    """Held-out evaluation of ``theta`` as :func:`meta_train` runs it.

    Args:
      theta: meta-parameters for ``config.optimizer``.
      config: the run's configuration (default :class:`MetaTrainConfig`); its task,
        horizon, optimizer options, seed and ``eval_seeds`` are used.
      seeds: overrides ``config.eval_seeds``.
    Returns:
      floats ``objective`` (mean per-step meta-loss), ``final_batch_loss``,
      ``train_loss`` (whole training split), ``test_loss``, ``test_accuracy``,
      each the mean over the held-out episodes at the end of the horizon.
    """
    config = config or MetaTrainConfig()
    if seeds is not None:
        config = dataclasses.replace(config, eval_seeds=seeds)
    config = _resolve(config)
    program = _program(config)
    theta = jax.tree.map(lambda x: jnp.asarray(x, F32), theta)
    return {k: float(v) for k, v in program.evaluate(theta).items()}


def _resolve_bound(config: MetaTrainConfig) -> MetaTrainConfig:
    """The configuration with ``blackbox_bound="auto"`` resolved."""
    if config.blackbox_bound != "auto":
        return config
    star_with_nominal = config.optimizer == "star" and config.nominal
    bound = DEFAULT_BLACKBOX_BOUND if star_with_nominal else None
    return dataclasses.replace(config, blackbox_bound=bound)


def _resolve(config: MetaTrainConfig) -> MetaTrainConfig:
    """The configuration with ``blackbox_bound="auto"`` resolved and
    ``nominal_stepsize=None`` replaced by a tuned value."""
    config = _resolve_bound(config)
    if config.nominal_stepsize is not None:
        return config
    if config.optimizer != "star":
        return dataclasses.replace(config, nominal_stepsize=DEFAULT_NOMINAL_STEPSIZE)
    best, _ = tune_nominal_stepsize(
        config.task,
        horizon=config.eval_horizon or config.horizon,
        seeds=config.eval_seeds,
        precondition=config.precondition,
        seed=config.seed,
    )
    return dataclasses.replace(config, nominal_stepsize=best)


def meta_gradient(config: MetaTrainConfig, *, devices=None) -> dict:
    """The first outer step's meta-gradient and meta-loss from a fresh state.

    Args:
      config: the run's configuration.
      devices: devices to shard the population over (default all).
    Returns:
      ``{"grad": theta-shaped NumPy dict, "meta_loss": float, "devices": n}``.
    """
    config = _resolve(config)
    program = _program(config, devices)
    state = program.init_state()
    poison = jnp.zeros((config.population, 2), F32)
    _, metrics = program.step(state, poison, config.estimator == "pes")
    return {
        "grad": jax.tree.map(np.asarray, jax.device_get(metrics["grad"])),
        "meta_loss": float(metrics["meta_loss"]),
        "devices": len(program.devices),
    }


# -- the loop ------------------------------------------------------------------------


def meta_train(
    config: MetaTrainConfig,
    out_dir,
    resume: bool = False,
    progress: bool = True,
    *,
    fault_steps: Sequence[int] = (),
    devices=None,
    command: str | None = None,
) -> MetaTrainResult:
    """Meta-train, checkpointing and logging to ``out_dir``; see the module doc.

    Ctrl-C (SIGINT, in the main thread) is taken at the next safe point whatever the
    moment it comes: after the compilation, evaluation or outer step under way, the
    run writes a checkpoint of where it is and raises ``KeyboardInterrupt``; resumed,
    it continues bit for bit. (Raised inside XLA's compilation it could crash the
    process.)

    Args:
      config: the run's configuration.
      out_dir: directory for the checkpoint, logs and thetas (created).
      resume: continue from ``out_dir/checkpoint.npz`` (bit for bit, whatever the
        step it was written at). Without a checkpoint the run starts afresh. The
        configuration must equal the saved one except for ``steps``, which may
        not be below the checkpoint's step.
      progress: show a tqdm progress bar (meta-loss, steps/s) on stderr.
      fault_steps: testing hook: at these outer steps (0-based) the first member's
        meta-loss is made NaN at the first inner step, which must be skipped as a
        non-finite meta-gradient and restart that pair.
      devices: devices for the population (default all of ``jax.devices()``).
      command: the command recorded in the thetas' sidecars (default: this
        process's ``sys.argv``; ``stability meta-train`` passes its own).
    Returns:
      a :class:`MetaTrainResult`.
    Raises:
      ValueError: ``out_dir`` already holds a checkpoint and ``resume`` is false, or
        the checkpoint does not belong to this configuration.
      KeyboardInterrupt: after a SIGINT, once the checkpoint is written.
    """
    import signal
    import threading

    received: list = []
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda *_: received.append(True))
    try:
        return _meta_train(
            config, out_dir, resume, progress, fault_steps, devices, command, received
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _meta_train(
    config, out_dir, resume, progress, fault_steps, devices, command, received
) -> MetaTrainResult:
    """:func:`meta_train`'s body; ``received`` turns non-empty on a SIGINT."""
    from tqdm import tqdm

    if not isinstance(config, MetaTrainConfig):
        raise ValueError(
            f"config: expected a MetaTrainConfig, got {type(config).__name__}"
        )
    files = _run_dir.RunDir(out_dir)
    if files.checkpoint.exists() and not resume:
        raise ValueError(
            f"out_dir: {files.out} already holds a checkpoint; "
            "resume it or use a new directory"
        )
    fault_steps = {int(s) for s in fault_steps}
    run = _Run.open(config, files, resume, devices)
    c, program = run.config, run.program
    t0 = time.perf_counter()
    keep = _KeepBest(run, t0)

    def stop_if_asked(step: int) -> None:
        if received:
            run.checkpoint(step)
            raise KeyboardInterrupt

    if progress:
        print(
            f"meta-train {c.optimizer} on {c.task}: compiling the outer step"
            + (" and evaluating the start" if run.fresh and c.eval_every else "")
            + " (tens of seconds on a CPU)",
            file=sys.stderr,
            flush=True,
        )
    if run.fresh and c.eval_every:
        keep(0)  # the starting point: STAR's tuned nominal term alone
    stop_if_asked(run.start)

    bar = tqdm(
        total=c.steps,
        initial=run.start,
        disable=not progress,
        unit="step",
        dynamic_ncols=True,
        desc=f"meta-train {c.optimizer}/{c.estimator}",
    )
    use_pes = jax.device_put(np.asarray(c.estimator == "pes"), program.replicated)
    poison_ok = _poison(c.population, program, False)
    try:
        with files.step_log() as write_row:
            for s in range(run.start, c.steps):
                poison = poison_ok
                if s in fault_steps:
                    poison = _poison(c.population, program, True)
                run.state, metrics = program.step(run.state, poison, use_pes)
                row = _step_row(s + 1, run.state, metrics, t0)
                write_row(row)
                done = s + 1
                if c.eval_every and done % c.eval_every == 0:
                    keep(done)
                elif c.eval_every and done == c.steps:
                    keep(done, final=True)
                if done % c.checkpoint_every == 0 or done == c.steps:
                    run.checkpoint(done)
                stop_if_asked(done)
                _show(bar, row, run.host, 2 * c.population * c.truncation)
    finally:
        bar.close()
    return run.finish(command)


class _Run:
    """A run's state between outer steps: the program, the training state, the host
    record (best score and step) and the best theta, and the files they go to."""

    def __init__(self, config, program, files, state, host, best_theta, start, fresh):
        self.config, self.program, self.files = config, program, files
        self.state, self.host, self.best_theta = state, host, best_theta
        self.start, self.fresh = start, fresh
        self.meta = {}

    @classmethod
    def open(cls, config: MetaTrainConfig, files, resume: bool, devices) -> "_Run":
        """A fresh run, or the one whose checkpoint is in ``files`` (``resume``),
        its logs rewound to the checkpoint."""
        if resume and files.checkpoint.exists():
            saved = files.saved_host()
            requested = config.to_dict()
            for name, value in {**_run_dir.LEGACY, **saved["requested"]}.items():
                if name in _run_dir.RESUMABLE_CHANGES:
                    continue
                if requested.get(name) != value:
                    raise ValueError(
                        f"{name}: the checkpoint in {files.out} was written with "
                        f"{value!r}, got {requested.get(name)!r}"
                    )
            effective = MetaTrainConfig.from_dict(
                {**_run_dir.LEGACY, **saved["effective"], "steps": config.steps}
            )
            program = _program(effective, devices)
            state, host, best = _run_dir.load_checkpoint(files.checkpoint, program)
            start = int(host["step"])
            if config.steps < start:
                raise ValueError(
                    f"steps: the checkpoint in {files.out} is at step {start}; a "
                    f"resumed run needs steps >= {start}, got {config.steps}"
                )
            files.rewind_logs(start, config.steps)
            run = cls(effective, program, files, state, host, best, start, False)
        else:
            effective = _resolve(config)
            program = _program(effective, devices)
            host = {"best_score": None, "best_step": -1}
            files.start_logs()
            run = cls(
                effective, program, files, program.init_state(), host, None, 0, True
            )
        run.meta = {"requested": config.to_dict(), "effective": effective.to_dict()}
        return run

    def checkpoint(self, step: int) -> None:
        host = {
            **self.host,
            **self.meta,
            "step": step,
            "format": _run_dir.CHECKPOINT_FORMAT,
        }
        _run_dir.save_checkpoint(
            self.files.checkpoint, self.state, host, self.best_theta
        )

    def finish(self, command) -> MetaTrainResult:
        """The final and best thetas, written with their sidecars."""
        c, state, host = self.config, self.state, self.host
        theta = jax.tree.map(np.asarray, jax.device_get(state.theta))
        best = theta if self.best_theta is None else self.best_theta
        best = jax.tree.map(lambda x: np.asarray(x, np.float32), best)
        final_rows = _run_dir.read_jsonl(self.files.eval, c.steps)
        metadata = {
            "command": command if command is not None else " ".join(sys.argv),
            "git_commit": _run_dir.git_commit(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "config": c.to_dict(),
            "metrics": {
                "steps": int(state.step),
                "skipped": int(state.skipped),
                "diverged": int(state.diverged),
                "episodes": int(state.episodes),
                "best_score": host["best_score"],
                "best_step": host["best_step"],
                "last_eval": final_rows[-1] if final_rows else None,
            },
        }
        self.files.save_thetas(theta, best, metadata)
        return MetaTrainResult(
            theta,
            best,
            float("nan") if host["best_score"] is None else float(host["best_score"]),
            int(host["best_step"]),
            int(state.step),
            int(state.skipped),
            int(state.diverged),
            c,
            self.files.out,
        )


class _KeepBest:
    """The held-out evaluation of the current theta, logged to ``eval.jsonl``; the
    best by ``config.select`` is kept (a closing ``final`` one never is)."""

    def __init__(self, run: _Run, t0: float) -> None:
        self.run, self.t0 = run, t0

    def __call__(self, step: int, final: bool = False) -> None:
        run, host = self.run, self.run.host
        result = {k: float(v) for k, v in run.program.evaluate(run.state.theta).items()}
        score = result[run.config.select]
        best = host["best_score"]
        improved = not final and math.isfinite(score) and (best is None or score < best)
        if improved:
            host["best_score"], host["best_step"] = score, step
            run.best_theta = jax.device_get(run.state.theta)
        row = {"step": step, **{k: _float(v) for k, v in result.items()}}
        row.update(
            best=improved, final=final, wall_s=round(time.perf_counter() - self.t0, 3)
        )
        run.files.append_eval(row)


def _poison(pairs: int, program, fault: bool):
    """The members' loss offsets at a step: zeros, or a NaN for the first member
    when the test hook injects a fault."""
    bad = np.zeros((pairs, 2), np.float32)
    if fault:
        bad[0, 0] = np.nan
    return jax.device_put(bad, program.pop_sharding)


def _step_row(step: int, state, metrics, t0: float) -> dict:
    """The log row of an outer step."""
    scalars = jax.device_get({k: v for k, v in metrics.items() if k != "grad"})
    counts = jax.device_get((state.skipped, state.diverged, state.episodes))
    return {
        "step": step,
        "meta_loss": _float(scalars["meta_loss"]),
        "grad_norm": _float(scalars["grad_norm"]),
        "skipped": int(scalars["skipped"]),
        "skipped_total": int(counts[0]),
        "diverged": int(scalars["diverged"]),
        "diverged_total": int(counts[1]),
        "episodes_total": int(counts[2]),
        "theta_norm": _float(scalars["theta_norm"]),
        "wall_s": round(time.perf_counter() - t0, 3),
    }


def _show(bar, row: dict, host: dict, members_per_step: int) -> None:
    rate = bar.format_dict.get("rate") or 0.0
    bar.set_postfix(
        meta_loss="nan" if row["meta_loss"] is None else f"{row['meta_loss']:.4f}",
        best="-" if host["best_score"] is None else f"{host['best_score']:.3g}",
        msteps_s=f"{rate * members_per_step:.0f}",
        refresh=False,
    )
    bar.update(1)


def _float(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
