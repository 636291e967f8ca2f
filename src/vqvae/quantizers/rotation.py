"""The rotation trick: carry the decoder's gradient to the encoder through a rotation.

Fifty, Junkins, Duan, Iyengar, Liu, Amid, Thrun, Ré, "Restructuring Vector Quantization with
the Rotation Trick", 2024, arXiv:2410.06424, section 4. In this package's names (the paper
calls the encoder output e and the code vector q): with z_e an encoder output and e its code,

    z_q = sg[ ||e|| / ||z_e|| * R ] z_e,
    R = I - 2 r r^T + 2 e_hat z_hat^T,   z_hat = z_e / ||z_e||,  e_hat = e / ||e||,
    r = (z_hat + e_hat) / ||z_hat + e_hat||.

R is the rotation in the plane of z_e and e taking z_hat to e_hat, so the forward value is e,
and with R and the scale held constant the gradient reaching z_e is
||e|| / ||z_e|| * R^T dL/dz_q instead of straight-through's dL/dz_q.

In floating point R z_e is only close to e; the output is written e + (v - sg[v]) with
v = sg[...] z_e, whose value is exactly e, bit-identical to straight-through's (base.py), so
``lookup(codes)`` still equals the forward pass. Degenerate rows: z_e = 0 has no direction,
and there the gradient falls back to straight-through's identity (R = I, scale 1); e = 0
follows the formula (scale 0); z_hat = -e_hat (r undefined) uses r = 0, R = I + 2 e_hat
z_hat^T, the reflection taking z_hat to e_hat. All of them stay finite.
"""

from __future__ import annotations

import torch

from vqvae.quantizers.base import straight_through

GRADIENTS = ("ste", "rotation")

# Norms at or below this count as zero (F.normalize's default eps).
TINY = 1e-12


def rotation_trick(z_e: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """z_e (N, D) encoder outputs, e (N, D) their code vectors -> (N, D): the value of e, the
    gradient of sg[||e|| / ||z_e|| R] z_e (section 4). No gradient reaches e."""
    if z_e.dim() != 2 or z_e.shape != e.shape:
        raise ValueError(
            f"rotation_trick: expected z_e and e of the same shape (N, D), "
            f"got {tuple(z_e.shape)} and {tuple(e.shape)}"
        )
    z = z_e if z_e.dtype in (torch.float32, torch.float64) else z_e.float()
    with torch.no_grad():
        z_norm = z.norm(dim=1, keepdim=True)  # (N, 1)
        e_norm = e.to(z.dtype).norm(dim=1, keepdim=True)  # (N, 1)
        has_dir = z_norm > TINY  # (N, 1): z_e = 0 falls back to straight-through
        z_hat = torch.where(has_dir, z / z_norm.clamp(min=TINY), 0.0)  # (N, D)
        e_hat = torch.where(has_dir, e.to(z.dtype) / e_norm.clamp(min=TINY), 0.0)  # (N, D)
        r = z_hat + e_hat
        r = r / r.norm(dim=1, keepdim=True).clamp(min=TINY)  # (N, D); 0 when z_hat = -e_hat
        scale = torch.where(has_dir, e_norm / z_norm.clamp(min=TINY), 1.0)  # (N, 1)
    # R z = z - 2 r (r.z) + 2 e_hat (z_hat.z), row by row, without building the D x D matrices
    rz = (r * z).sum(1, keepdim=True)  # (N, 1)
    zz = (z_hat * z).sum(1, keepdim=True)  # (N, 1)
    rotated = scale * (z - 2 * r * rz + 2 * e_hat * zz)  # (N, D)
    return e.detach() + (rotated - rotated.detach()).to(e.dtype)


def check_gradient(gradient: str) -> str:
    """The name of a gradient estimator, checked: "ste" (straight-through) or "rotation"."""
    if gradient not in GRADIENTS:
        raise ValueError(f"expected gradient in {GRADIENTS}, got {gradient!r}")
    return gradient


def pass_gradient(flat: torch.Tensor, e: torch.Tensor, gradient: str) -> torch.Tensor:
    """flat (N, D) encoder outputs, e (N, D) codes -> (N, D) with e's value and the chosen
    estimator's gradient to ``flat``."""
    if gradient == "rotation":
        return rotation_trick(flat, e)
    return straight_through(flat, e)
