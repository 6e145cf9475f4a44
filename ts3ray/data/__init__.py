"""Datasets as device-ready tensors or image files, label noise (synthetic and human), and the
device-resident and streaming batch paths."""
from ts3ray.data.batches import Batch, DeviceBatches
from ts3ray.data.cache import check_remote_root, local_data_root
from ts3ray.data.dataset import ImageDataset
from ts3ray.data.files import FileImageDataset, FileSplit, ImageTransform
from ts3ray.data.human import LABEL_SETS, check_noise, check_noise_files, human_noise_rate
from ts3ray.data.metrics import evaluate_topk, topk_accuracy, topk_correct
from ts3ray.data.noise import ASYM_MAPS, NOISE_KINDS, NoisyLabels, apply_label_noise
from ts3ray.data.placement import DATA_PATHS, choose_data_path
from ts3ray.data.prepared import EvalSet, PreparedData, prepare_data, training_labels
from ts3ray.data.sources import (DATASET_NAMES, FILE_DATASET_NAMES, check_available, load_dataset, load_file_dataset,
                                 num_classes_of, ships_clean_val)
from ts3ray.data.streaming import StreamingBatches, stream_eval_batches
from ts3ray.data.synthetic import make_synthetic

__all__ = [
    "check_remote_root", "local_data_root",
    "ASYM_MAPS", "Batch", "DATASET_NAMES", "DATA_PATHS", "DeviceBatches", "EvalSet", "FILE_DATASET_NAMES",
    "FileImageDataset", "FileSplit", "ImageDataset", "ImageTransform", "LABEL_SETS", "NOISE_KINDS", "NoisyLabels",
    "PreparedData", "StreamingBatches", "apply_label_noise", "check_available", "check_noise", "check_noise_files",
    "choose_data_path", "evaluate_topk", "human_noise_rate", "load_dataset", "load_file_dataset", "make_synthetic",
    "num_classes_of", "prepare_data", "ships_clean_val", "stream_eval_batches", "topk_accuracy", "topk_correct",
    "training_labels",
]
