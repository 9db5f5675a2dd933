"""RoCL's loss (seed 003, eq. 3 and the released code): NT-Xent with two positives per instance,
plus lam times NT-Xent between the adversarial and the other view."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cinv.losses.functional import need_pairs, off_diagonal
from cinv.losses.inversion import NTXentLoss

__all__ = ["RoCLLoss", "nt_xent_pair"]


def nt_xent_pair(a: Tensor, b: Tensor, temperature: float, *, detach_columns: bool = False,
                 normalize: bool = True) -> Tensor:
    """NT-Xent over the 2N embeddings of two views (a_i and b_i positives), both directions
    averaged, on unit vectors. ``detach_columns``: the released code's ``pairwise_similarity``
    (src/loss.py line 55, ``torch.mm(outputs_norm, outputs_norm.transpose(0,1).detach())``), where
    gradients reach each embedding through its own row of the similarity matrix only."""
    n = a.shape[0]
    need_pairs("nt_xent", n)
    z = torch.cat([a, b]).float()
    z = F.normalize(z, dim=1) if normalize else z  # (inputs already on the unit sphere)
    logits = off_diagonal(z @ (z.detach() if detach_columns else z).T / temperature)
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, positives)


class RoCLLoss(nn.Module):
    """L_RoCL + lam * NT-Xent(x_adv, t'(x)) on projections of t(x), t'(x) and x_adv, each [N, D].

    L_RoCL is NT-Xent over the 3N embeddings where every embedding's positives are the other two
    of its instance, as in the released code (which also gives lam = 1/256): each anchor pays
    -log softmax for each of its two positives separately, over all 3N - 1 others.
    ``pooled=True`` instead puts both positives in one numerator, the paper's eq. 3 form.
    All three inputs are trained (there is no teacher side). ``detach``: the released code's
    similarity matrix, whose second operand is detached (src/loss.py line 55), so each embedding
    gets gradients through its own row only; without it, through its row and its column.
    """

    def __init__(self, temperature: float = 0.5, lam: float = 1 / 256, *, pooled: bool = False, detach: bool = False):
        super().__init__()
        self.pair = NTXentLoss(temperature)  # checks the temperature
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not (math.isfinite(lam) and lam >= 0):
            raise ValueError(f"RoCLLoss: lam must be a float >= 0; got {lam!r}")
        self.temperature, self.lam, self.pooled, self.detach = self.pair.temperature, float(lam), pooled, bool(detach)

    def forward(self, z_view: Tensor, z_other: Tensor, z_adv: Tensor | None = None) -> Tensor:
        """``z_adv`` None: SimCLR's NT-Xent over the 2N views (RoCL with its attack switched off)."""
        views = [z_view, z_other] + ([] if z_adv is None else [z_adv])
        if z_view.ndim != 2 or any(z.shape != z_view.shape for z in views):
            raise ValueError(f"RoCLLoss: the embeddings must be [N, D] of one shape; got "
                             f"{', '.join(str(tuple(z.shape)) for z in views)}")
        n, k = z_view.shape[0], len(views)
        need_pairs("RoCLLoss", n)
        z = F.normalize(torch.cat(views).float(), dim=1)
        log_prob = F.log_softmax(off_diagonal(z @ (z.detach() if self.detach else z).T / self.temperature), dim=1)
        idx = torch.arange(k * n, device=z.device)
        positives = torch.stack([(idx + j * n) % (k * n) for j in range(1, k)], dim=1)  # the instance's other views
        pos = log_prob.gather(1, positives)
        main = -(torch.logsumexp(pos, dim=1).mean() if self.pooled else pos.sum(dim=1).mean())
        if z_adv is None:
            return main
        # NT-Xent(x_adv, t'(x)) with both sides trained (no teacher side)
        reg = nt_xent_pair(z[2 * n:], z[n:2 * n], self.temperature, detach_columns=self.detach, normalize=False)
        return main + self.lam * reg

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, lam={self.lam}, pooled={self.pooled}, detach={self.detach}"
