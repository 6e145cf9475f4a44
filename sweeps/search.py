"""`python sweeps/search.py [options]`: the search sweep (same as `ts3ray sweep search`).

All logic lives in the ts3ray package, so `ray submit cluster.yaml sweeps/search.py -- ...`
works with this one file. `--help` lists the options.
"""
import sys

from ts3ray.tune.cli import run_sweep

if __name__ == "__main__":
    sys.exit(run_sweep("search", sys.argv[1:]))
