"""Image data: registered data sets and paths loaded as uint8 arrays, and the conversions to
and from the ``[-1, 1]`` tensors the models see. See ``datasets.py`` for what a spec can be."""

from .base import DataError, ImageDataset
from .datasets import DATASET_NAMES, load_dataset, resolve_data_root
from .transforms import resize_images, save_png_grid, save_pngs, to_model_input, to_uint8_images

__all__ = [
    "DATASET_NAMES",
    "DataError",
    "ImageDataset",
    "load_dataset",
    "resize_images",
    "resolve_data_root",
    "save_png_grid",
    "save_pngs",
    "to_model_input",
    "to_uint8_images",
]
