"""Datasets as device-ready tensors or image files, label noise (synthetic and human), and the
device-resident and streaming batch paths.

Two rooms: ``sources/`` holds one module per dataset (its on-disk layout, its checks, its
loader) and the registry (``sources/__init__.py``); ``core/`` holds what they share: list
files read and every listed path resolved inside data_root (``core/files.py``,
``core/contained.py``, the one place that resolves and checks a dataset path), decoding,
caching, remote roots, noise, the validation split, placement, batches and streaming."""
from ts3ray.data.core.batches import Batch, DeviceBatches
from ts3ray.data.core.cache import check_remote_root, local_data_root
from ts3ray.data.core.dataset import ImageDataset
from ts3ray.data.core.files import FileImageDataset, FileSplit, ImageTransform
from ts3ray.data.sources.human import LABEL_SETS, check_noise, check_noise_files, human_noise_rate
from ts3ray.data.core.metrics import evaluate_topk, topk_accuracy, topk_correct
from ts3ray.data.core.noise import ASYM_MAPS, NOISE_KINDS, NoisyLabels, apply_label_noise
from ts3ray.data.core.placement import DATA_PATHS, choose_data_path
from ts3ray.data.core.prepared import EvalSet, PreparedData, prepare_data, training_labels
from ts3ray.data.sources import (DATASET_NAMES, FILE_DATASET_NAMES, check_available, load_dataset, load_file_dataset,
                                 load_for_run,
                                 num_classes_of, ships_clean_val)
from ts3ray.data.core.streaming import StreamingBatches, stream_eval_batches
from ts3ray.data.sources.synthetic import make_synthetic

__all__ = [
    "check_remote_root", "local_data_root",
    "ASYM_MAPS", "Batch", "DATASET_NAMES", "DATA_PATHS", "DeviceBatches", "EvalSet", "FILE_DATASET_NAMES",
    "FileImageDataset", "FileSplit", "ImageDataset", "ImageTransform", "LABEL_SETS", "NOISE_KINDS", "NoisyLabels",
    "PreparedData", "StreamingBatches", "apply_label_noise", "check_available", "check_noise", "check_noise_files",
    "choose_data_path", "evaluate_topk", "human_noise_rate", "load_dataset", "load_file_dataset", "load_for_run", "make_synthetic",
    "num_classes_of", "prepare_data", "ships_clean_val", "stream_eval_batches", "topk_accuracy", "topk_correct",
    "training_labels",
]
