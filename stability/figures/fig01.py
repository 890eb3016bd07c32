"""fig01: eigenvalues of the NQM closed loop ``A = I - (alpha I + P) H`` for one
random non-symmetric learned term P, alone and with each stabiliser."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from stability.figures._base import Quality, fmt

LABELS = (
    "(a) black box",
    "(b) + nominal",
    "(c) weight decay",
    "(d) precond.",
    "(e) combined",
)
SHRINKS = (1.0, 0.6, 0.3)  # the weight-decay shrinkage w of P, the last one drawn


class Record(NamedTuple):
    n: int
    alpha: float  # the nominal step 1 / lambda_max(H)
    p_norm: float  # ||P||_2
    eigenvalues: list  # per panel (a)-(e), the eigenvalues of A
    radii: list  # per panel, rho(A)
    path: list  # (w, eigenvalues of A = I - wPH) for the shrinks before the last


def compute(quality: Quality) -> Record:
    from stability import analyses, operators, problems

    n = 24
    lam = problems.spectra.log_uniform(n, 1e-2, 1.0)
    rot = problems.random_rotation(n, seed=1)
    hess = rot @ np.diag(lam) @ rot.T
    top = float(lam.max())
    # The stand-in for a learned linear term: a Gaussian, non-symmetric matrix that
    # does not commute with H, of the size of the Newton step 1/lambda_max(H).
    p = np.random.default_rng(0).standard_normal((n, n)) / np.sqrt(n) / top
    alpha = 1.0 / top
    precond = rot @ np.diag(lam**-0.5) @ rot.T  # idealised output preconditioner
    w = SHRINKS[-1]

    def spectrum(alpha_, p_, c=None):
        loop = operators.nominal_closed_loop(hess, p_, alpha_, c)
        return analyses.eigenvalues(np.asarray(loop.transition))

    zs = [
        spectrum(0.0, p),
        spectrum(alpha, p),
        spectrum(0.0, w * p),
        spectrum(0.0, p, precond),
        spectrum(alpha, w * p, precond),
    ]
    path = [(s, spectrum(0.0, s * p)) for s in SHRINKS[:-1]]
    radii = [float(np.max(np.abs(z))) for z in zs]
    return Record(n, alpha, float(np.linalg.norm(p, 2)), zs, radii, path)


def draw(record: Record):
    from stability import plotting

    w = SHRINKS[-1]
    titles = (
        "(a) black box alone\n$A = I - PH$",
        "(b) with a nominal term\n$A = I - (\\alpha I + P)H$",
        f"(c) weight decay: $P \\to wP$\n$A = I - wPH$, $w = {w}$",
        "(d) output preconditioner\n$A = I - H^{-1/2}PH$",
        f"(e) all combined, $w = {w}$\n$A = I - H^{{-1/2}}(\\alpha I + wP)H$",
    )
    with plotting.style():
        fig, axes = plotting.figure(2, 3, width=7.4, height=6.0)
        flat = axes.ravel()
        lim = 1.05 * max(1.0, *record.radii)
        panels = zip(titles, record.eigenvalues, record.radii, strict=True)
        for i, (title, z, r) in enumerate(panels):
            ax = flat[i]
            if i == 2:  # the path of the eigenvalues as w shrinks toward 0
                marks = zip(record.path, "s^", ("0.7", "0.45"), strict=True)
                for (s, zs), mk, shade in marks:
                    ax.scatter(
                        zs.real,
                        zs.imag,
                        s=8,
                        marker=mk,
                        color=shade,
                        zorder=2,
                        label=f"w = {s}",
                    )
            plotting.eigenvalues(
                z,
                ax,
                title=f"{title}\nρ = {r:.3f}",
                limits=(-lim, lim),
                zoom=(0.55, 1.5, -0.45, 0.45),
            )
            if i == 2:
                ax.legend(
                    loc="lower left", handletextpad=0.1, borderpad=0.1, fontsize=6.5
                )
            if i % 3:
                ax.set_ylabel("")
        plotting.radius_bars(
            list(LABELS), record.radii, flat[5], title="(f) spectral radius ρ"
        )
        fig.suptitle(
            f"NQM closed loop, n = {record.n}: spec(H) log-uniform in [0.01, 1], "
            f"random basis; P Gaussian, non-symmetric, ‖P‖₂ = {record.p_norm:.2f};\n"
            f"α = 1/λmax(H) = {record.alpha:g}; weight decay = shrinkage w; exact "
            "preconditioner; crosses: |z| > 1; dashed circle: radius ρ",
            fontsize=8.5,
        )
    return fig


def numbers(record: Record) -> dict:
    out = {f"rho {k}": fmt(v, 5) for k, v in zip(LABELS, record.radii, strict=True)}
    out["eigenvalues outside the unit circle (a)"] = str(
        int(np.sum(np.abs(record.eigenvalues[0]) > 1))
    )
    return out


def caption(record: Record) -> str:
    return (
        "Eigenvalues of A for one random non-symmetric learned term P on a rotated "
        "24-dimensional NQM, against the unit circle (insets: the window "
        "[0.55, 1.5] x [-0.45, 0.45] around z = 1). A black box alone has "
        "eigenvalues outside the circle; the nominal "
        "term alpha*H pulls them in; shrinking P (weight decay) moves every "
        "eigenvalue toward z = 1 along a straight line (1 - w*mu) but does not "
        "stabilise on its own; nor does the exact output preconditioner; the nominal "
        "term, shrinkage and preconditioner together are stable."
    )
