"""Linearised STAR against observed training (fig09).

Thin wrapper around the package: the figure is computed and drawn by
``stability.figures.fig09`` (registered as ``fig09_linearized_star``)::

    python figures/fig09_linearized_star.py [--quick] [--out DIR]

The default is publication quality, written next to this script; ``--quick`` shrinks
grids, seeds and horizons. The key numbers behind the figure are printed.
"""

import sys

from stability.reproduce import script_main

if __name__ == "__main__":
    sys.exit(script_main("fig09"))
