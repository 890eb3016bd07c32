"""Command line: ``stability reproduce | region | meta-train | evaluate | bench``."""

import argparse
import sys


def _parser():
    p = argparse.ArgumentParser(prog="stability", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("reproduce", help="regenerate the figures and the lemma report")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    print(f"stability {args.command}: not available yet", file=sys.stderr)
    return 2
