"""The Python API on the bundled digits data: a run, a small grid sweep, their tables, a plot
and the Pareto pick's ticket, retrained. About a minute on 2 CPU cores.

    python examples/digits_api.py [OUT_DIR]
"""
from __future__ import annotations

import sys
from pathlib import Path

import ts3ray

TINY = {"dataset": "digits", "noise": "sym", "noise_rate": 0.4, "epochs": 2, "e1": 1, "e2": 1,
        "rounds": 1, "val_fraction": 0.2}


def main(out: Path) -> None:
    run = ts3ray.run(TINY, out=str(out / "run"), threads=1)
    print(run.levels[["round", "sparsity", "acc_sparse_last"]].to_string(index=False))

    sweep = ts3ray.sweep("grid", TINY, grid=["lam=0,1"], storage=str(out / "sweeps"),
                         name="digits-api", num_cpus=2)
    print(sweep.table("pareto", within=100))
    print(sweep.plot("pareto", str(out / "pareto.png"), within=100))
    print(sweep.tickets()[["trial", "level", "sparsity", "bytes"]].to_string(index=False))

    ticket = sweep.export_ticket(str(out / "pick.safetensors"), pareto=True, within=100)
    again = ts3ray.run(ticket=ticket, out=str(out / "retrain"), threads=1)
    print("retrained:", again.levels[["round", "sparsity", "acc_sparse_last"]].to_string(index=False))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "examples-out"))
