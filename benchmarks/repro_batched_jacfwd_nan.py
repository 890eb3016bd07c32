"""Reproduce a non-deterministic XLA:CPU miscompilation seen with STAR's Jacobian.

``jit(vmap(jacfwd(step)))`` of one STAR step, lowered to the *same* StableHLO every
time, is compiled by XLA:CPU into an executable whose outputs are all NaN in some
compilations; a bad executable stays bad on every call, a good one stays good.
It needs the machine to be busy (run several copies at once) and appears in about
1 compilation in 5 to 20 with jax/jaxlib 0.10.2 on 2 cores. Without STAR's
``custom_jvp`` (differentiating the fused heads directly), or with ``lax.map`` in
place of the outer ``vmap``, we saw no bad compilation in 60. The library uses the
per-point and ``lax.map`` forms (``stability.lopt.dynamics``, ``stability.reproduce``).

    for i in 1 2 3 4 5 6; do python benchmarks/repro_batched_jacfwd_nan.py & done; wait

Each copy prints how many of its compilations gave NaN.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from stability import problems  # noqa: E402
from stability.lopt import init_theta, star, zero_output_layer  # noqa: E402


def main(compilations: int, points: int) -> None:
    theta = zero_output_layer(init_theta(jax.random.key(0), heads=3))
    opt = star(theta, nominal_stepsize=1.0)
    prob = problems.NoisyQuadratic.from_eigenvalues(
        problems.spectra.log_uniform(8, 1e-2, 1.0), noise_var=1e-4
    )
    h = jnp.asarray(prob.hessian)

    def step(x, s):
        return opt.update(h @ x, s, x)[0]

    def trajectory(key):
        def body(carry, k):
            x, s = carry
            xi = prob.noise_factor() @ jax.random.normal(k, (8,), h.dtype)
            u, s_new = opt.update(h @ (x - xi), s, x)
            return (x + u, s_new), (x, s)

        x0 = jnp.asarray(prob.x0)
        keys = jax.random.split(key, 20 * points)
        return jax.lax.scan(body, (x0, opt.init(x0)), keys)[1]

    xs, states = jax.jit(trajectory)(jax.random.key(1))
    xs, states = jax.tree.map(lambda a: a[::20], (xs, states))
    bad = 0
    texts = set()
    for _ in range(compilations):
        batched = jax.jit(jax.vmap(lambda x, s: jax.jacfwd(step)(x, s)))
        lowered = batched.lower(xs, states)
        texts.add(lowered.as_text(debug_info=False))
        jac = np.asarray(lowered.compile()(xs, states))
        bad += bool(np.isnan(jac).any())
    print(
        f"{bad}/{compilations} compilations gave NaN "
        f"({len(texts)} distinct StableHLO text(s); jax {jax.__version__})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compilations", type=int, default=10)
    parser.add_argument("--points", type=int, default=300)
    args = parser.parse_args()
    main(args.compilations, args.points)
