"""Lottery runs end to end on the real-world fixtures (each dataset's exact on-disk layout):
ANIMAL-10N on the device and streamed, Clothing1M streamed with its clean validation set,
WebVision with two test sets and top-5. Tiny schedules and `cifar_cnn`; Clothing1M and
WebVision are read by their real loaders, then resized to 32 px instead of 224/299 px (the
same resize-and-crop path, a 50x smaller network input) to keep the tests fast."""
from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest

import realworld_layouts as layouts
from ts3ray.config import make_config
from ts3ray.data.core.files import ImageTransform
from ts3ray.data.sources import load_file_dataset
from ts3ray.errors import ConfigError
from ts3ray.run import LotteryRun

RESIZED = ImageTransform(size=32, resize=36)  # instead of 224 (Clothing1M) or 299 (WebVision)
TINY = {"epochs": 2, "e1": 1, "e2": 1, "rounds": 1, "batch_size": 4, "eval_batch_size": 8,
        "protocol": "shared",
        "arch": "cifar_cnn", "data_workers": 0}


def run_rows(root, small: ImageTransform | None = None, **values):
    values = {**TINY, "data_root": str(root), **values}
    if values.get("data_path") == "device":  # data_workers has no effect there: refused
        values.pop("data_workers")
    config = make_config(values)
    dataset = None
    if small is not None:  # the real loader, a smaller output size (module docstring)
        dataset = dataclasses.replace(load_file_dataset(config.dataset, root), transform=small)
    run = LotteryRun(config, dataset=dataset, device="cpu")
    return run, list(run.epochs())


def test_animal10n_streamed_equals_device_resident_with_a_held_out_part(tmp_path):
    layouts.animal10n(tmp_path, n_train=40, n_test=6, size=32)  # 4 images per noisy label
    padded = ImageTransform(size=32, pad=4)  # ANIMAL-10N's own recipe, at 32 px (not 64)
    kept = {}
    for path in ("device", "stream"):
        run, rows = run_rows(tmp_path, small=padded, dataset="animal10n", data_path=path,
                             val_fraction=0.25)
        assert run.data.path == path and run.data.batches.num_samples == 30  # 10 held out
        kept[path] = pd.DataFrame(rows).drop(columns="seconds")
    pd.testing.assert_frame_equal(kept["device"], kept["stream"])  # the same run, bit for bit
    rows = kept["stream"]
    assert rows["val_acc_sparse"].between(0, 1).all()
    assert rows["label_precision"].isna().all()  # ANIMAL-10N knows no clean training label
    assert run.level_rows[-1]["sparsity"] == pytest.approx(0.5, abs=1e-3)


def test_clothing1m_streams_and_reports_best_on_its_clean_validation_set(tmp_path):
    layouts.clothing1m(tmp_path)
    run, rows = run_rows(tmp_path, small=RESIZED, dataset="clothing1m", batch_size=2)
    assert run.data.path == "stream"
    assert all(0 <= r["clean_val_acc_sparse"] <= 1 for r in rows)
    level = run.level_rows[-1]
    best = max((r for r in rows if r["round"] == 1), key=lambda r: (r["clean_val_acc_sparse"],
                                                                       -r["epoch"]))
    assert level["acc_sparse_at_best_clean_val"] == best["acc_sparse"]  # Table V "Best"
    assert level["acc_sparse_last"] == rows[-1]["acc_sparse"]  # Table V "Last"
    # label precision over the two training images whose clean label is known
    assert all(math.isnan(r["label_precision"]) or r["label_precision"] in (0.0, 0.5, 1.0)
               for r in rows)
    with pytest.raises(ConfigError, match="needs device-resident data"):
        LotteryRun(make_config({**TINY, "data_root": str(tmp_path), "dataset": "clothing1m",
                                "method": "dividemix"}), device="cpu")


def test_webvision_reports_top1_and_top5_on_both_test_sets(tmp_path):
    layouts.webvision(tmp_path)
    run, rows = run_rows(tmp_path, small=RESIZED, dataset="webvision50", batch_size=2)
    assert run.data.test_sets == ("test", "ilsvrc12_val")
    for r in rows:
        for column in ("acc_sparse", "top5_sparse", "acc_sparse_ilsvrc12_val",
                       "top5_sparse_ilsvrc12_val"):
            assert 0 <= r[column] <= 1
        assert r["top5_sparse"] >= r["acc_sparse"]
    level = run.level_rows[-1]
    assert level["top5_sparse_ilsvrc12_val_last"] == rows[-1]["top5_sparse_ilsvrc12_val"]
