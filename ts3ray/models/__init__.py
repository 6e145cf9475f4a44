"""Backbone registry (LeNet-300-100, CIFAR CNN, VGG-16/19, ResNet-18, Inception-ResNet-v2) and prunable
layers."""
from ts3ray.models.prunable import PRUNABLE_LAYERS, output_name, prunable_names
from ts3ray.models.registry import MODEL_NAMES, build_model

__all__ = ["MODEL_NAMES", "PRUNABLE_LAYERS", "build_model", "output_name", "prunable_names"]
