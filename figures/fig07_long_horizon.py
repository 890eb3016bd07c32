"""Long-horizon stability of learned optimizers (fig07).

Thin wrapper around the package: the figure is computed and drawn by
``stability.figures.fig07`` (registered as ``fig07_long_horizon``)::

    python figures/fig07_long_horizon.py [--quick] [--out DIR]

The default is publication quality, written next to this script; ``--quick`` shrinks
grids, seeds and horizons. The key numbers behind the figure are printed.
"""

import sys

from stability.reproduce import script_main

if __name__ == "__main__":
    sys.exit(script_main("fig07"))
