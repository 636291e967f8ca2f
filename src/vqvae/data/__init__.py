"""Image data: registered data sets and paths loaded as uint8 arrays, and the conversions to
and from the ``[-1, 1]`` tensors the models see. See ``datasets.py`` for what a spec can be."""

from vqvae.errors import DataError

from .base import ImageDataset
from .datasets import load_dataset, resolve_data_root, split_layout
from .splits import SplitLayout
from .transforms import resize_images, save_png_grid, save_pngs, to_model_input, to_uint8_images

__all__ = [
    "DataError",
    "ImageDataset",
    "SplitLayout",
    "load_dataset",
    "resize_images",
    "resolve_data_root",
    "save_png_grid",
    "save_pngs",
    "split_layout",
    "to_model_input",
    "to_uint8_images",
]
