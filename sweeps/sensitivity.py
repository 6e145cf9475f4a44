"""`python sweeps/sensitivity.py [options]`: the sensitivity sweep (same as `ts3ray sweep sensitivity`).

All logic lives in the ts3ray package, so `ray submit cluster.yaml sweeps/sensitivity.py -- ...`
works with this one file. `--help` lists the options.
"""
import sys

from ts3ray.tune.cli import run_sweep

if __name__ == "__main__":
    sys.exit(run_sweep("sensitivity", sys.argv[1:]))
