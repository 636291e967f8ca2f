"""Batched inference with trained models, one module per modality: ``images`` (encode,
reconstruct, decode, sample, score and evaluate image VQ-VAEs; re-exported here, so
``from vqvae.inference import evaluate`` reads images), ``audio`` (speech: utterances of
any length, speakers, conversion) and ``video`` (latent rollouts under actions)."""

from vqvae.inference.images import (
    BATCH_SIZE,
    Evaluation,
    batches,
    box_mask,
    data_batches,
    decode,
    encode,
    evaluate,
    inpaint,
    reconstruct,
    sample,
    sample_codes,
    score,
)

__all__ = [
    "BATCH_SIZE",
    "Evaluation",
    "batches",
    "box_mask",
    "data_batches",
    "decode",
    "encode",
    "evaluate",
    "inpaint",
    "reconstruct",
    "sample",
    "sample_codes",
    "score",
]
