"""Seconds to check and read a Clothing1M-sized set of list files (the paths + labels, no pixels).

Writes a Clothing1M layout whose ``noisy_label_kv.txt`` and ``noisy_train_key_list.txt`` hold
``--n`` lines each (keys ``images/<0..9>/<00..99>/<i>.jpg``: 1,000 folders, as in the real
set), with ``--files`` also an empty image file per key (so the folders exist and are
listed), then times ``check_available`` (the up-front check of ``ts3ray run``) and
``load_file_dataset`` (what the run reads), best of ``--repeats``.

    python benchmarks/bench_lists.py [--n 1000000] [--files] [--repeats 3] [--dir /dev/shm]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from ts3ray.data import check_available, load_file_dataset


def key(i: int) -> str:
    return f"images/{i % 10}/{(i // 10) % 100:02d}/{i}.jpg"


def write_layout(root: Path, n: int, files: bool) -> None:
    base = root / "clothing1m"
    base.mkdir(parents=True)
    keys = [key(i) for i in range(n)]
    (base / "noisy_label_kv.txt").write_text("".join(f"{k} {i % 14}\n" for i, k in enumerate(keys)))
    small = [f"images/5/50/v{i}.jpg" for i in range(100)]
    (base / "clean_label_kv.txt").write_text("".join(f"{k} {i % 14}\n" for i, k in enumerate(keys[:70_000] + small)))
    (base / "noisy_train_key_list.txt").write_text("".join(f"{k}\n" for k in keys))
    (base / "clean_val_key_list.txt").write_text("".join(f"{k}\n" for k in small[:50]))
    (base / "clean_test_key_list.txt").write_text("".join(f"{k}\n" for k in small[50:]))
    (base / "images").mkdir()
    if files:
        for k in keys + small:
            path = base / k
            try:
                fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
            except FileNotFoundError:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
            os.close(fd)


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--files", action="store_true", help="also write an empty file per key")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to write the layout (default: the temp folder)")
    opts = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ts3ray-lists-", dir=opts.dir))
    try:
        start = time.perf_counter()
        write_layout(root, opts.n, opts.files)
        print(f"layout: {opts.n:,} lines{' + files' if opts.files else ''} written in "
              f"{time.perf_counter() - start:.1f} s")
        print(f"check_available('clothing1m'): {best(lambda: check_available('clothing1m', root), opts.repeats):.2f} s")
        print(f"load_file_dataset('clothing1m'): {best(lambda: load_file_dataset('clothing1m', root), opts.repeats):.2f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
