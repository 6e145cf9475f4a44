"""`python sweeps/grid.py [options]`: the full-factorial grid sweep (same as `ts3ray sweep grid`).

All logic lives in the ts3ray package, so `ray submit cluster.yaml sweeps/grid.py -- ...`
works with this one file. `--help` lists the options.
"""
import sys

from ts3ray.tune.cli import run_sweep

if __name__ == "__main__":
    sys.exit(run_sweep("grid", sys.argv[1:]))
