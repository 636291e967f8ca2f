"""Data: registered data sets and paths loaded as uint8 image arrays, in memory or read on
demand (``LazyImages``, batches from ``read_batches``), with the conversions to and from the
``[-1, 1]`` tensors the models see, or as float32 waveforms (``audio.py``). See
``datasets.py`` for what a spec can be."""

from vqvae.errors import DataError

from .audio import (
    AudioDataset,
    audio_rate,
    load_audio_folder,
    pad_to_hop,
    read_audio,
    resample,
    wav_bytes,
    write_wav,
)
from .base import ImageDataset
from .datasets import (
    check_images,
    data_kind,
    load_audio,
    load_dataset,
    load_images,
    resolve_data_root,
    split_layout,
)
from .lazy import LazyImages
from .loader import default_workers, read_all, read_batches
from .splits import SplitLayout
from .transforms import (
    png_bytes,
    resize_images,
    save_png_grid,
    save_pngs,
    tile,
    to_model_input,
    to_uint8_images,
)

__all__ = [
    "AudioDataset",
    "audio_rate",
    "png_bytes",
    "tile",
    "wav_bytes",
    "DataError",
    "ImageDataset",
    "LazyImages",
    "check_images",
    "data_kind",
    "default_workers",
    "load_audio",
    "load_audio_folder",
    "pad_to_hop",
    "write_wav",
    "SplitLayout",
    "load_dataset",
    "load_images",
    "read_all",
    "read_audio",
    "read_batches",
    "resample",
    "resize_images",
    "resolve_data_root",
    "save_png_grid",
    "save_pngs",
    "split_layout",
    "to_model_input",
    "to_uint8_images",
]
