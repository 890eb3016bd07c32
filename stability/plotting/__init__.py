"""Records in, matplotlib Axes out.

Every function here takes data records produced elsewhere (``stability.analyses``,
``stability.problems``, ``stability.lemmas``, ``stability.lopt``) or plain NumPy arrays,
draws them and returns the Axes; nothing here computes the mathematics, and nothing
imports ``jax.numpy``. Calling pattern::

    region = analyses.stability_region("heavy_ball", lr=lrs, beta=betas, curvature=1.0)
    with plotting.style():
        fig, axes = plotting.figure(1, 1)
        ax = plotting.region(region, axes[0, 0], x="beta", y="lr")
        plotting.boundary(ax, betas, 2 * (1 + betas), label="exact: a h = 2(1 + β)")
"""

from stability.plotting._style import CYCLE as CYCLE
from stability.plotting._style import PALETTE as PALETTE
from stability.plotting._style import figure as figure
from stability.plotting._style import panel_label as panel_label
from stability.plotting._style import save as save
from stability.plotting._style import style as style
from stability.plotting.certified import certified_region as certified_region
from stability.plotting.curves import bars as bars
from stability.plotting.curves import growth as growth
from stability.plotting.curves import loss_band as loss_band
from stability.plotting.curves import radius_trace as radius_trace
from stability.plotting.curves import shade as shade
from stability.plotting.edge import edge as edge
from stability.plotting.edge import edge_horizon as edge_horizon
from stability.plotting.edge import edge_loss as edge_loss
from stability.plotting.regions import axis_label as axis_label
from stability.plotting.regions import boundary as boundary
from stability.plotting.regions import region as region
from stability.plotting.regions import rho_colorbar as rho_colorbar
from stability.plotting.spectra import eigenvalues as eigenvalues
from stability.plotting.spectra import radius_bars as radius_bars
from stability.plotting.spectra import unit_circle as unit_circle
