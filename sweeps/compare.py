"""`python sweeps/compare.py [options]`: the compare sweep (same as `ts3ray sweep compare`).

Methods x settings x seeds, each trial one lottery run of one method recording every IMP
level; prints the Table I-style comparison (every method dense and at the highest sparsity).
All logic lives in the ts3ray package, so `ray submit cluster.yaml sweeps/compare.py -- ...`
works with this one file. `--help` lists the options.
"""
import sys

from ts3ray.tune.cli import run_sweep

if __name__ == "__main__":
    sys.exit(run_sweep("compare", sys.argv[1:]))
