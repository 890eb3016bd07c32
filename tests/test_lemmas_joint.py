"""Joint versus parameter-block stability of optimizers with state."""

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from stability.analyses import max_stable_learning_rate
from stability.lemmas import joint
from stability.optimizers import learned, modes

AGGMO_BETAS = (0.9, 0.99, 0.999)


def _rho(m):
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(m)))))


def test_claim_shape():
    inst = joint.sample(np.random.default_rng(0))
    assert joint.NAME == "joint"
    assert set(joint.DROPS) <= set(joint.hypotheses(inst))
    assert all(isinstance(v, float) for v in joint.bounds(inst).values())


def test_zero_decay_is_nonnegative():
    # decays in [0, 1): beta = 0 (plain gd as heavy ball) is allowed
    for family, betas in (("heavy_ball", 0.0), ("aggmo", (0.0, 0.9))):
        inst = joint.make_instance(family=family, H=[[1.0]], lr=1.0, betas=betas)
        assert joint.hypotheses(inst)["nonnegative_decays"]
    inst = joint.make_instance(family="heavy_ball", H=[[1.0]], lr=1.0, betas=-0.1)
    assert not joint.hypotheses(inst)["nonnegative_decays"]


@given(
    seed=st.integers(0, 2**31 - 1),
    family=st.sampled_from(joint.MOMENTUM_FAMILIES),
    n=st.integers(1, 8),
    log_kappa=st.floats(0.0, 6.0),
)
def test_stable_block_implies_stable_joint(seed, family, n, log_kappa):
    rng = np.random.default_rng(seed)
    inst = joint.sample(rng, family=family, n=n, kappa=10**log_kappa)
    assert all(joint.hypotheses(inst).values())
    assert joint.conclusion(inst)
    b = joint.bounds(inst)
    # momentum loosens the limit: the joint limit is never below the block's
    assert b["joint_lr_limit"] >= b["block_lr_limit"] * (1 - 1e-12)


@pytest.mark.parametrize("beta", [-0.9, -0.5, 0.0, 0.3, 0.9, 0.99])
def test_exact_limits_heavy_ball_and_ema(beta):
    assert joint.upper_limit("heavy_ball", beta) == pytest.approx(2 * (1 + beta))
    assert joint.upper_limit("ema_momentum", beta) == pytest.approx(
        2 * (1 + beta) / (1 - beta)
    )
    for family in ("heavy_ball", "ema_momentum"):
        assert joint.numerical_upper_limit(family, beta) == pytest.approx(
            joint.upper_limit(family, beta), rel=1e-12
        )


def test_exact_limit_aggmo():
    x_star = joint.upper_limit("aggmo", AGGMO_BETAS)
    assert x_star == pytest.approx(15116438 / 146521, rel=1e-15)
    assert x_star == pytest.approx(103.169088390060, abs=1e-11)
    assert max_stable_learning_rate("aggmo", 1.0, betas=AGGMO_BETAS) == pytest.approx(
        x_star, rel=1e-12
    )
    # the parameter block alone would say 2 / mean(1 - b)
    assert joint.block_limit("aggmo", AGGMO_BETAS) == pytest.approx(2 / 0.037)


def test_aggmo_limit_formula_on_random_decays():
    rng = np.random.default_rng(1)
    for _ in range(5):
        betas = tuple(rng.uniform(-0.9, 0.999, rng.integers(1, 4)))
        assert joint.numerical_upper_limit("aggmo", betas) == pytest.approx(
            joint.upper_limit("aggmo", betas), rel=1e-10
        )


def test_aggmo_limit_matches_symbolic_derivation():
    symbolic = pytest.importorskip("stability.analyses.symbolic")
    b = symbolic.stability_boundary("aggmo", betas=AGGMO_BETAS)
    assert float(b.x_star) == pytest.approx(
        joint.upper_limit("aggmo", AGGMO_BETAS), rel=1e-15
    )


def _instances():
    rng = np.random.default_rng(2)
    H = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.2]])
    yield joint.make_instance(family="heavy_ball", H=H, lr=0.4, betas=0.8)
    yield joint.make_instance(family="heavy_ball", H=H, lr=0.4, betas=-0.6)
    yield joint.make_instance(family="ema_momentum", H=H, lr=3.0, betas=0.7)
    yield joint.make_instance(family="aggmo", H=H, lr=20.0, betas=AGGMO_BETAS)
    yield joint.make_instance(
        family="adam_aggmo", H=H, lr=0.01, betas=AGGMO_BETAS, v=[1e-4, 0.0, 2e-3]
    )
    yield joint.make_instance(
        family="learned_momentum",
        H=H,
        lr=0.5,
        betas=0.9,
        P=0.1 * rng.standard_normal((3, 3)),
    )


@pytest.mark.parametrize("inst", list(_instances()), ids=lambda i: i.family)
def test_jacobian_of_real_optimizer_matches_closed_form(inst):
    loop = joint.joint_loop(inst)
    np.testing.assert_allclose(
        np.asarray(loop.transition), joint.joint_matrix(inst), rtol=1e-12, atol=1e-14
    )
    block, joint_rho = joint.radii(inst)
    n = inst.H.shape[0]
    assert _rho(loop.parameter_block) == pytest.approx(block, rel=1e-9)
    assert _rho(loop.transition) == pytest.approx(joint_rho, rel=1e-9)
    assert loop.parameter_block.shape == (n, n)


def test_mode_blocks_match_modes():
    x = np.array([0.1, 1.0, 3.0])
    for beta in (-0.5, 0.7):
        ref, _ = modes.heavy_ball_block(x, beta)
        np.testing.assert_allclose(joint.mode_blocks(x, [beta], [1.0]), ref)
        ref, _ = modes.ema_momentum_block(x, beta)
        np.testing.assert_allclose(joint.mode_blocks(x, [beta], [1 - beta]), ref)
    b = np.array(AGGMO_BETAS)
    ref, _ = modes.aggmo_block(x, AGGMO_BETAS)
    np.testing.assert_allclose(joint.mode_blocks(x, b, 1 - b), ref)


@pytest.mark.parametrize("family", ["heavy_ball", "ema_momentum", "aggmo"])
def test_limits_on_the_joint_matrix(family):
    # the closed-form joint matrix, equal to the real optimizer's Jacobian (above)
    betas = AGGMO_BETAS if family == "aggmo" else 0.6
    x_star = joint.upper_limit(family, betas)
    H = np.diag([1.0, 0.5, 0.01])
    for frac, stable in ((0.99, True), (1.01, False)):
        inst = joint.make_instance(family=family, H=H, lr=frac * x_star, betas=betas)
        assert (_rho(joint.joint_matrix(inst)) < 1) == stable
        assert joint.conclusion(inst) == stable


def test_adam_aggmo_near_a_noiseless_optimum():
    x_star = joint.upper_limit("aggmo", AGGMO_BETAS)
    assert joint.upper_limit("adam_aggmo", AGGMO_BETAS) == pytest.approx(x_star / 1000)
    h = 4.0
    for v, scale in ((0.0, 1e-3), (1e-2, np.sqrt(0.999e-2 + 1e-6))):
        assert joint.upper_limit("adam_aggmo", AGGMO_BETAS, v=v) == pytest.approx(
            x_star * scale
        )
        for frac, stable in ((0.99, True), (1.01, False)):
            lr = frac * x_star * scale / h
            inst = joint.make_instance(
                family="adam_aggmo", H=[[h]], lr=lr, betas=AGGMO_BETAS, v=[v]
            )
            assert (_rho(joint.joint_loop(inst).transition) < 1) == stable


def test_block_stable_joint_unstable_with_negative_decay():
    # heavy ball, beta = -0.5, lr h = 1.5: block 1 - 1.5 = -0.5, joint limit 1
    inst = joint.make_instance(family="heavy_ball", H=[[1.0]], lr=1.5, betas=-0.5)
    loop = joint.joint_loop(inst)
    assert _rho(loop.parameter_block) < 1 < _rho(loop.transition)
    found = joint.counterexample("nonnegative_decays", seed=0)
    loop = joint.joint_loop(found)
    assert min(found.betas) < 0
    assert _rho(loop.parameter_block) < 1 < _rho(loop.transition)


def test_block_unstable_joint_stable_with_ordinary_decays():
    # heavy ball, beta = 0.9, lr h = 3: block |1 - 3| = 2, joint limit 3.8
    inst = joint.make_instance(family="heavy_ball", H=[[1.0]], lr=3.0, betas=0.9)
    loop = joint.joint_loop(inst)
    assert _rho(loop.transition) < 1 < _rho(loop.parameter_block)
    found = joint.counterexample("block_stable", seed=0)
    loop = joint.joint_loop(found)
    assert all(0 <= b < 1 for b in found.betas)
    assert _rho(loop.transition) < 1 < _rho(loop.parameter_block)


@pytest.mark.parametrize("drop", list(joint.DROPS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counterexamples(drop, seed):
    inst = joint.counterexample(drop, seed=seed)
    assert inst is not None
    hyp = joint.hypotheses(inst)
    assert not hyp[drop]
    assert all(v for k, v in hyp.items() if k != drop)
    if joint.DROPS[drop] == "sufficiency":
        assert not joint.conclusion(inst)
    else:
        assert joint.conclusion(inst)
    again = joint.counterexample(drop, seed=seed)
    assert again.lr == inst.lr and again.betas == inst.betas


def test_learned_term_on_momentum_breaks_the_block_test():
    inst = joint.counterexample("momentum_family", seed=0)
    loop = joint.joint_loop(inst)
    assert inst.family == "learned_momentum" and 0 <= inst.betas[0] < 1
    assert _rho(loop.parameter_block) < 1 < _rho(loop.transition)


def test_bad_inputs_raise():
    H = np.eye(2)
    with pytest.raises(ValueError, match="family"):
        joint.make_instance(family="adam", H=H, lr=0.1, betas=0.9)
    with pytest.raises(ValueError, match="H"):
        joint.make_instance(family="heavy_ball", H=-H, lr=0.1, betas=0.9)
    with pytest.raises(ValueError, match="lr"):
        joint.make_instance(family="heavy_ball", H=H, lr=-0.1, betas=0.9)
    with pytest.raises(ValueError, match="betas"):
        joint.make_instance(family="heavy_ball", H=H, lr=0.1, betas=1.0)
    with pytest.raises(ValueError, match="betas"):
        joint.make_instance(family="heavy_ball", H=H, lr=0.1, betas=(0.5, 0.9))
    with pytest.raises(ValueError, match="P"):
        joint.make_instance(family="learned_momentum", H=H, lr=0.1, betas=0.9)
    with pytest.raises(ValueError, match="P"):
        joint.make_instance(family="aggmo", H=H, lr=0.1, betas=[0.9], P=H)
    with pytest.raises(ValueError, match="v"):
        joint.make_instance(family="adam_aggmo", H=H, lr=0.1, betas=[0.9], v=[-1, 0])
    with pytest.raises(ValueError, match="v"):
        joint.make_instance(family="aggmo", H=H, lr=0.1, betas=[0.9], v=[0, 0])
    with pytest.raises(ValueError, match="family"):
        joint.upper_limit("learned_momentum", 0.9)
    with pytest.raises(ValueError, match="drop"):
        joint.counterexample("nope")
    with pytest.raises(ValueError, match="kind"):
        joint.counterexample("block_stable", kind="sufficiency")
    with pytest.raises(ValueError, match="budget"):
        joint.counterexample("block_stable", budget=-1)
    with pytest.raises(ValueError, match="beta"):
        learned.learned_momentum(0.1, 1.5, H)


# ---------------------------------------------------------------------------------
# issue 25: the AggMo closed form for every k


def _symbolic_mode_block(k):
    """The per-mode AggMo block of joint.mode_blocks with x and the decays as
    symbols (weights c_i = 1 - b_i)."""
    x = sympy.Symbol("x", positive=True)
    b = sympy.symbols(f"b1:{k + 1}")
    M = sympy.zeros(k + 1, k + 1)
    M[0, 0] = 1 - x * sum(1 - bi for bi in b) / k
    for i, bi in enumerate(b):
        M[0, i + 1] = -bi / k
        M[i + 1, 0] = (1 - bi) * x
        M[i + 1, i + 1] = bi
    return x, b, M


@pytest.mark.parametrize("k", [2, 3, 4])
def test_aggmo_characteristic_polynomial_at_minus_one_symbolically(k):
    """chi(-1) = (-1)^(k+1) prod(1 + b_j) [2 - (x/k) sum (1 - b_i)/(1 + b_i)], so
    z = -1 is an eigenvalue exactly at x* = 2k / sum (1 - b_i)/(1 + b_i); and
    chi(1) = x prod(1 - b_j). The symbolic block is the module's."""
    x, b, M = _symbolic_mode_block(k)
    eye = sympy.eye(k + 1)
    at_minus_one = (-eye - M).det(method="berkowitz")  # chi(-1)
    at_one = (eye - M).det(method="berkowitz")  # chi(1)

    def prod_plus(skip=None):
        return sympy.prod([1 + bj for j, bj in enumerate(b) if j != skip])

    # (-1)^(k+1) prod(1 + b_j) [2 - (x/k) sum (1 - b_i)/(1 + b_i)], denominators
    # cleared
    expected = (-1) ** (k + 1) * (
        2 * prod_plus() - x / k * sum((1 - bi) * prod_plus(i) for i, bi in enumerate(b))
    )
    assert sympy.expand(at_minus_one - expected) == 0
    assert sympy.expand(at_one - x * sympy.prod([1 - bi for bi in b])) == 0
    # chi(-1) is affine in x: its only zero is x*
    x_star = -at_minus_one.subs(x, 0) / sympy.diff(at_minus_one, x)
    formula = 2 * k / sum((1 - bi) / (1 + bi) for bi in b)
    assert sympy.diff(at_minus_one, x, 2) == 0
    assert sympy.cancel(x_star - formula) == 0
    # the symbolic block is joint.mode_blocks at a numeric point
    rng = np.random.default_rng(k)
    betas = rng.uniform(-0.9, 0.99, k)
    xv = 0.7
    numeric = joint.mode_blocks(xv, betas, 1 - betas)[0]
    subs = {x: xv, **dict(zip(b, betas, strict=True))}
    np.testing.assert_allclose(
        np.array(M.subs(subs).evalf(), dtype=float), numeric, rtol=1e-14, atol=1e-15
    )


@given(
    st.lists(st.floats(-0.95, 0.995), min_size=1, max_size=5),
)
@settings(max_examples=30, deadline=None)
def test_aggmo_limit_is_the_stability_edge_for_any_decays(betas):
    """No complex pair crosses first (the docstring's proof, (ii)): just below x*
    every mode root is inside the unit disc, just above one is outside; negative
    decays included."""
    betas = np.array(betas)
    x_star = joint.upper_limit("aggmo", tuple(betas))
    c = 1 - betas
    for factor, inside in ((1 - 1e-6, True), (1 + 1e-6, False)):
        block = joint.mode_blocks(factor * x_star, betas, c)[0]
        assert (np.max(np.abs(np.linalg.eigvals(block))) < 1) == inside
