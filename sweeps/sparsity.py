"""`python sweeps/sparsity.py [options]`: the sparsity sweep (same as `ts3ray sweep sparsity`).

All logic lives in the ts3ray package, so `ray submit cluster.yaml sweeps/sparsity.py -- ...`
works with this one file. `--help` lists the options.
"""
import sys

from ts3ray.tune.cli import run_sweep

if __name__ == "__main__":
    sys.exit(run_sweep("sparsity", sys.argv[1:]))
