"""Bad input and silently wrong answers of the Python API (issue 24, API half).

Every case tried, and what it does now; each row is checked by a test below (the
CLI's cases are in the CLI's own bad-input tests):

=================================================  =====================================
call                                               outcome
=================================================  =====================================
``spectral_radius("abc")``                         ValueError ``m: expected a numeric``
``spectral_radius(None)``, a ragged list           ValueError ``m: expected a numeric``
``spectral_radius``, NumPy matrix with NaN         ValueError ``m: contains non-finite``
``spectral_radius``, JAX matrix with inf           ValueError ``m: contains non-finite``
``spectral_radius(np.ones((2, 3)))``               ValueError ``m: expected shape``
``spectral_radius(m, method="qr")``                ValueError ``method:``
``is_stable(m, tol=nan)``                          ValueError ``tol:``
``is_marginal("abc")``                             ValueError ``m: expected a numeric``
``is_stable``, loop of ``sgd(0.1, momentum=1)``    False, marginal (was True)
heavy-ball region at ``lr = 0``                    marginal, not stable (was stable)
``closed_loop("adam", problem)``                   ValueError ``optimizer:``
``closed_loop(opt, np.eye(2))``                    ValueError ``problem:``
``closed_loop(opt, problem, [1, 2, 3])``           ValueError ``params:``
``NoisyQuadratic``, non-symmetric Hessian          ValueError ``hessian: must be sym``
``NoisyQuadratic``, indefinite Hessian             ValueError ``hessian: must be pos``
``NoisyQuadratic``, NaN in the Hessian             ValueError ``hessian: contains``
``NoisyQuadratic``, noise_cov (3, 3) for n = 2     ValueError ``noise_cov: expected``
``NoisyQuadratic``, indefinite noise_cov           ValueError ``noise_cov: must be``
``NoisyQuadratic``, x0 of shape (3,)               ValueError ``x0: expected shape``
``max_stable_learning_rate("nominal", p=-0.5)``    ValueError: set is [(0.5, 2.5)]
                                                   (it returned 2.5)
``max_stable_learning_rate("nominal", p=3)``       ValueError: the set is empty
``stable_learning_rates("sgd")``                   ValueError ``family:``
``stable_learning_rates("heavy_ball", beta=1.5)``  ValueError ``beta:``
``stable_learning_rates("gd", -1.0)``              ValueError ``curvature:``
``stable_learning_rates("gd", lr=0.1)``            ValueError ``lr: is the ray``
``expected_losses``, loop linearised from Adam     LinearisedLoopWarning (was silent)
``expected_losses(..., linearised="yes")``         ValueError ``linearised:``
``stationary_loss``, loop of ``momentum=1``        inf (raised LinAlgError)
``load_theta``, shipped STAR theta                 ThetaConfigWarning: load_optimizer
``star(load_theta(path))``                         that warning (was a 1e-3 STAR)
``load_optimizer(path, learning_rate=0.1)``        ValueError ``learning_rate:``
``load_optimizer``, STAR without metadata          ValueError ``nominal_stepsize:``
``load_optimizer``, corrupt sidecar                ValueError naming the sidecar
``load_optimizer``, a text file                    ValueError naming the file
``load_optimizer``, a missing file                 FileNotFoundError (documented)
=================================================  =====================================
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from stability import analyses, lopt, operators, optimizers, problems
from stability.problems import NoisyQuadratic

P2 = NoisyQuadratic.from_eigenvalues([1.0, 0.5])
GD = optimizers.gd(0.1)
NAN = np.array([[np.nan, 0.0], [0.0, 0.5]])

CASES = {
    "spectral_radius str": (lambda: analyses.spectral_radius("abc"), "^m: expected"),
    "spectral_radius None": (lambda: analyses.spectral_radius(None), "^m: expected"),
    "spectral_radius ragged": (
        lambda: analyses.spectral_radius([[1.0, 2.0], [3.0]]),
        "^m: expected a numeric",
    ),
    "spectral_radius nan": (lambda: analyses.spectral_radius(NAN), "^m: contains"),
    "spectral_radius jax inf": (
        lambda: analyses.spectral_radius(jnp.array([[0.5, jnp.inf], [0.0, 0.5]])),
        "^m: contains",
    ),
    "spectral_radius shape": (
        lambda: analyses.spectral_radius(np.ones((2, 3))),
        "^m: expected shape",
    ),
    "spectral_radius method": (
        lambda: analyses.spectral_radius(np.eye(2), method="qr"),
        "^method:",
    ),
    "is_stable tol": (lambda: analyses.is_stable(np.eye(2), tol=np.nan), "^tol:"),
    "is_marginal str": (lambda: analyses.is_marginal("abc"), "^m: expected"),
    "closed_loop optimizer": (
        lambda: operators.closed_loop("adam", P2),
        "^optimizer: expected an optax",
    ),
    "closed_loop problem": (
        lambda: operators.closed_loop(GD, np.eye(2)),
        "^problem: expected a NoisyQuadratic",
    ),
    "closed_loop params": (
        lambda: operators.closed_loop(GD, P2, [1.0, 2.0, 3.0]),
        "^params: expected shape",
    ),
    "hessian non-symmetric": (
        lambda: NoisyQuadratic([[1.0, 2.0], [0.0, 1.0]], np.eye(2), np.ones(2)),
        "^hessian: must be symmetric",
    ),
    "hessian indefinite": (
        lambda: NoisyQuadratic(np.diag([1.0, -1.0]), np.eye(2), np.ones(2)),
        "^hessian: must be positive definite",
    ),
    "hessian nan": (
        lambda: NoisyQuadratic(NAN, np.eye(2), np.ones(2)),
        "^hessian: contains non-finite",
    ),
    "noise_cov shape": (
        lambda: NoisyQuadratic(np.eye(2), np.eye(3), np.ones(2)),
        "^noise_cov: expected shape",
    ),
    "noise_cov indefinite": (
        lambda: NoisyQuadratic(np.eye(2), np.diag([1.0, -1.0]), np.ones(2)),
        "^noise_cov: must be positive semidefinite",
    ),
    "x0 shape": (
        lambda: NoisyQuadratic(np.eye(2), np.eye(2), np.ones(3)),
        "^x0: expected shape",
    ),
    "max_stable p < 0": (
        lambda: analyses.max_stable_learning_rate("nominal", 1.0, p=-0.5),
        r"^nominal: the stable set in alpha is \[\(0\.5",
    ),
    "max_stable empty": (
        lambda: analyses.max_stable_learning_rate("nominal", 1.0, p=3.0),
        r"stable set in alpha is \[\]",
    ),
    "stable_learning_rates family": (
        lambda: analyses.stable_learning_rates("sgd"),
        "^family:",
    ),
    "stable_learning_rates beta": (
        lambda: analyses.stable_learning_rates("heavy_ball", beta=1.5),
        "^beta:",
    ),
    "stable_learning_rates curvature": (
        lambda: analyses.stable_learning_rates("gd", -1.0),
        "^curvature:",
    ),
    "stable_learning_rates ray": (
        lambda: analyses.stable_learning_rates("gd", lr=0.1),
        "^lr: is the ray",
    ),
    "expected_losses flag": (
        lambda: problems.expected_losses(
            P2, operators.closed_loop(GD, P2), 3, linearised="yes"
        ),
        "^linearised: expected True or False",
    ),
    "load_optimizer override": (
        lambda: lopt.load_optimizer(
            lopt.io.SHIPPED_THETAS / "star.npz", learning_rate=0.1
        ),
        "^learning_rate: star takes no such option",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_api_input(name):
    call, match = CASES[name]
    with pytest.raises(ValueError, match=match):
        call()


def test_silently_wrong_answers_are_gone():
    """The four wrong answers of the table: each now marginal, refused or warned."""
    loop = operators.closed_loop(optax.sgd(0.1, momentum=1.0), P2)
    assert not analyses.is_stable(loop.transition)
    assert analyses.is_marginal(loop.transition)
    region = analyses.stability_region(
        "heavy_ball", lr=np.linspace(0, 4, 9), beta=np.linspace(0, 0.99, 5), curvature=1
    )
    assert not region.stable[0].any() and region.marginal[0].all()
    opt = optax.adam(0.1)
    x = jnp.array([0.3, -0.2])
    state = opt.init(x)
    for _ in range(2):
        u, state = opt.update(P2.grad(x, 0 * x), state, x)
        x = optax.apply_updates(x, u)
    adam = operators.closed_loop(opt, P2, x, state)
    with pytest.warns(problems.LinearisedLoopWarning):
        problems.expected_losses(P2, adam, 3)
    assert problems.stationary_loss(P2, loop) == np.inf
    with pytest.warns(lopt.ThetaConfigWarning, match="load_optimizer"):
        lopt.load_theta(lopt.io.SHIPPED_THETAS / "star.npz")


def test_theta_files_that_are_not_thetas(tmp_path):
    theta = lopt.zero_output_layer(lopt.init_theta(jax.random.key(0), heads=3))
    lopt.save_theta(tmp_path / "bare.npz", theta)
    with pytest.raises(ValueError, match="^nominal_stepsize: .*bare.npz"):
        lopt.load_optimizer(tmp_path / "bare.npz")
    lopt.save_theta(tmp_path / "t.npz", theta, {"config": {"nominal_stepsize": 0.1}})
    (tmp_path / "t.json").write_text("{not json")
    with pytest.raises(ValueError, match="t.json: not a valid JSON sidecar"):
        lopt.load_optimizer(tmp_path / "t.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="text.npz: cannot read a theta"):
        lopt.load_optimizer(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError):
        lopt.load_optimizer(tmp_path / "missing.npz")
