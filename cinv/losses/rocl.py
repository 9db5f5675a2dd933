"""RoCL's loss (seed 003, eq. 3 and the released code): NT-Xent with two positives per instance,
plus lam times NT-Xent between the adversarial and the other view."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cinv.losses.functional import need_pairs, off_diagonal
from cinv.losses.inversion import NTXentLoss

__all__ = ["RoCLLoss"]


class RoCLLoss(nn.Module):
    """L_RoCL + lam * NT-Xent(x_adv, t'(x)) on projections of t(x), t'(x) and x_adv, each [N, D].

    L_RoCL is NT-Xent over the 3N embeddings where every embedding's positives are the other two
    of its instance, as in the released code (which also gives lam = 1/256): each anchor pays
    -log softmax for each of its two positives separately, over all 3N - 1 others.
    ``pooled=True`` instead puts both positives in one numerator, the paper's eq. 3 form.
    All three inputs are trained (there is no teacher side): gradients reach every one.
    """

    def __init__(self, temperature: float = 0.5, lam: float = 1 / 256, *, pooled: bool = False):
        super().__init__()
        self.pair = NTXentLoss(temperature)  # checks the temperature
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not (math.isfinite(lam) and lam >= 0):
            raise ValueError(f"RoCLLoss: lam must be a float >= 0; got {lam!r}")
        self.temperature, self.lam, self.pooled = self.pair.temperature, float(lam), pooled

    def forward(self, z_view: Tensor, z_other: Tensor, z_adv: Tensor | None = None) -> Tensor:
        """``z_adv`` None: SimCLR's NT-Xent over the 2N views (RoCL with its attack switched off)."""
        views = [z_view, z_other] + ([] if z_adv is None else [z_adv])
        if z_view.ndim != 2 or any(z.shape != z_view.shape for z in views):
            raise ValueError(f"RoCLLoss: the embeddings must be [N, D] of one shape; got "
                             f"{', '.join(str(tuple(z.shape)) for z in views)}")
        n, k = z_view.shape[0], len(views)
        need_pairs("RoCLLoss", n)
        z = F.normalize(torch.cat(views).float(), dim=1)
        log_prob = F.log_softmax(off_diagonal(z @ z.T / self.temperature), dim=1)
        idx = torch.arange(k * n, device=z.device)
        positives = torch.stack([(idx + j * n) % (k * n) for j in range(1, k)], dim=1)  # the instance's other views
        pos = log_prob.gather(1, positives)
        main = -(torch.logsumexp(pos, dim=1).mean() if self.pooled else pos.sum(dim=1).mean())
        if z_adv is None:
            return main
        # NT-Xent(x_adv, t'(x)) with both sides trained: nt_xent's compute() on unit vectors, without
        # the teacher-side detach of its forward().
        reg = self.pair.compute(z[2 * n:], z[n:2 * n])
        return main + self.lam * reg

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, lam={self.lam}, pooled={self.pooled}"
