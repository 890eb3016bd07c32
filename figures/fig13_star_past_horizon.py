"""STAR's real training step past its horizon (fig13).

Thin wrapper around the package: the figure is computed and drawn by
``stability.figures.fig13`` (registered as ``fig13_star_past_horizon``)::

    python figures/fig13_star_past_horizon.py [--quick] [--out DIR]

The default is publication quality, written next to this script; ``--quick`` shrinks
grids, seeds and horizons. The key numbers behind the figure are printed.
"""

import sys

from stability.reproduce import script_main

if __name__ == "__main__":
    sys.exit(script_main("fig13"))
