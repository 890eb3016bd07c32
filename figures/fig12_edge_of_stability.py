"""Gradient descent and Adam at the edge of stability on a real network (fig12).

Thin wrapper around the package: the figure is computed and drawn by
``stability.figures.fig12`` (registered as ``fig12_edge_of_stability``)::

    python figures/fig12_edge_of_stability.py [--quick] [--out DIR]

The default is publication quality, written next to this script; ``--quick`` shrinks
grids, seeds and horizons. The key numbers behind the figure are printed.
"""

import sys

from stability.reproduce import script_main

if __name__ == "__main__":
    sys.exit(script_main("fig12"))
