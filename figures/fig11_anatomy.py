"""STAR's update split into its blackbox and nominal terms (fig11).

Thin wrapper around the package: the figure is computed and drawn by
``stability.figures.fig11`` (registered as ``fig11_anatomy``)::

    python figures/fig11_anatomy.py [--quick] [--out DIR]

The default is publication quality, written next to this script; ``--quick`` shrinks
grids, seeds and horizons. The key numbers behind the figure are printed.
"""

import sys

from stability.reproduce import script_main

if __name__ == "__main__":
    sys.exit(script_main("fig11"))
