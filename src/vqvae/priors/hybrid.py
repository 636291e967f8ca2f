"""A next-frame prior that is a product of two experts: the conditional PixelCNN
(``pixelcnn.py``) and the parallel prior (``parallel.py``), their logits added,

    p(c_i | c_<i, cond)  proportional to  exp(pixelcnn_i(c_<i, cond) + parallel_i(cond))

(Hinton 2002's product of experts, in logit space). The parallel expert says what the context
and the action predict at each position, seeing the whole scene through its dilated
convolutions; the PixelCNN adds what the codes already drawn say, so the product scores a
frame autoregressively (its bits per frame are an exact likelihood). The parallel expert is
also trained alone (``training_logits``), so that it can draw a whole frame by itself
(``method="parallel"``): the rollouts that continue the scene (docs/video.md).
"""

from __future__ import annotations

import torch

from vqvae.priors.base import Condition, Prior, Sampler
from vqvae.priors.parallel import ParallelFrameConfig, ParallelFramePrior
from vqvae.priors.pixelcnn import PixelCNNConfig, PixelCNNPrior
from vqvae.sampling import Draw


class HybridFramePrior(Prior):
    """PixelCNN x parallel expert over one frame's codes (module doc)."""

    config_class = PixelCNNConfig
    config: PixelCNNConfig

    def __init__(self, config: PixelCNNConfig, parallel: ParallelFrameConfig) -> None:
        super().__init__(config)
        self.pixelcnn = PixelCNNPrior(config)
        self.parallel = ParallelFramePrior(parallel)

    def training_logits(self, codes: torch.Tensor, cond: Condition) -> tuple[torch.Tensor, ...]:
        """The product's logits and the parallel expert's alone, (B, K, h, w) each: training
        fits both, so that the expert can also draw frames by itself."""
        parallel = self.parallel.context_logits(cond)
        return self.pixelcnn._logits(codes, cond) + parallel, parallel

    def _logits(self, codes: torch.Tensor, cond: Condition) -> torch.Tensor:
        return self.training_logits(codes, cond)[0]

    def samplers(self) -> dict[str, Sampler]:
        """ "fast" (the default) and "naive" draw the product in raster order (the PixelCNN's
        two samplers), "parallel" every code at once from the parallel expert."""
        return {"fast": self._sample_fast, "naive": self._sample_naive,
                "parallel": self.parallel._sample_all}  # fmt: skip

    def _sample_fast(self, n: int, cond: Condition, draw: Draw) -> torch.Tensor:
        bias = self.parallel.context_logits(cond)  # (n, K, h, w): the context alone
        return self.pixelcnn._sample_fast(n, cond, draw, bias=bias)
