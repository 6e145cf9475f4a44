"""Datasets as device-ready tensors, seeded label noise and device-resident batches."""
from ts3ray.data.batches import Batch, DeviceBatches
from ts3ray.data.dataset import ImageDataset
from ts3ray.data.noise import ASYM_MAPS, NOISE_KINDS, NoisyLabels, apply_label_noise
from ts3ray.data.sources import (DATASET_NAMES, check_available, load_dataset, num_classes_of,
                                 ships_clean_val)
from ts3ray.data.synthetic import make_synthetic

__all__ = [
    "ASYM_MAPS", "Batch", "DATASET_NAMES", "DeviceBatches", "ImageDataset", "NOISE_KINDS", "NoisyLabels",
    "apply_label_noise", "check_available", "load_dataset", "make_synthetic", "num_classes_of",
    "ships_clean_val",
]
