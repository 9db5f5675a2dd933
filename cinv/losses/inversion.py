"""Contrastive-inversion losses (seed 000, eq. 1-4 and appendix C), one small module each.

Every loss takes unnormalised student embeddings S(A(x)) and teacher embeddings R(x), both
[N, D], normalises them (all but ``mse_unnormalized``, the released code's ablation), and
returns the mean over the batch. The teacher side is detached:
only the student learns. All contrastive variants are (1/tau) * mse + a uniformity term; they
differ only in what the uniformity term contrasts against, so they share one implementation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cinv.losses.functional import need_pairs, off_diagonal
from cinv.registry import Registry

__all__ = ["InversionLoss", "REGISTRY", "get", "names"]

REGISTRY: Registry[InversionLoss] = Registry("loss")


def get(name: str, temperature: float = 0.1) -> InversionLoss:
    """``get("student_teacher", temperature=0.1)`` -> callable ``loss(student, teacher)``."""
    return REGISTRY.get(name, temperature=temperature)


def names() -> list[str]:
    return REGISTRY.names()


class InversionLoss(nn.Module):
    """Base: normalise, check shapes, then [compute][] on unit vectors."""

    name = ""

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature > 0
        ):
            raise ValueError(f"loss {self.name}: temperature must be a positive float; got {temperature!r}")
        self.temperature = float(temperature)

    def check(self, student: Tensor, teacher: Tensor) -> None:
        if student.ndim != 2 or student.shape != teacher.shape:
            raise ValueError(
                f"loss {self.name}: student and teacher must both be [N, D]; got "
                f"{tuple(student.shape)} and {tuple(teacher.shape)}"
            )

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        self.check(student, teacher)
        s = F.normalize(student.float(), dim=1)
        t = F.normalize(teacher.detach().float(), dim=1)
        return self.compute(s, t)

    def compute(self, s: Tensor, t: Tensor) -> Tensor:
        """The loss of unit-norm student and teacher embeddings ``s`` and ``t`` (B x D): what a subclass defines."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


@REGISTRY.register("mse")
class MSELoss(InversionLoss):
    """-mean <s_i, t_i>: least squares on unit vectors, constants dropped (eq. 1).

    ``temperature`` is accepted for a uniform interface and has no effect.
    """

    name = "mse"

    def compute(self, s, t):
        return -(s * t).sum(dim=1).mean()


@REGISTRY.register("mse_unnormalized")
class UnnormalizedMSELoss(InversionLoss):
    """Element-wise mean squared error on the raw embeddings, the released code's MSE ablation
    (Sriram-Ravula/Contrastive-Inversion noisy_clip_dataparallel.py lines 215-216:
    ``F.mse_loss(input2, input1)``), not eq. 1: it also pulls the embeddings' norms together.

    ``temperature`` is accepted for a uniform interface and has no effect."""

    name = "mse_unnormalized"

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        self.check(student, teacher)
        return F.mse_loss(student.float(), teacher.detach().float())


class UniformityLoss(InversionLoss):
    """(1/tau) * mse + mean_i log sum_j (the variant's kernel terms)."""

    def uniformity_logits(self, s: Tensor, t: Tensor) -> Tensor:
        """[N, M] logits whose row-wise log-sum-exp is the uniformity term of anchor i."""
        raise NotImplementedError

    def compute(self, s, t):
        need_pairs(self.name, s.shape[0])
        alignment = (s * t).sum(dim=1) / self.temperature
        uniformity = torch.logsumexp(self.uniformity_logits(s, t), dim=1)
        return (uniformity - alignment).mean()


@REGISTRY.register("student_teacher")
class StudentTeacherLoss(UniformityLoss):
    """The paper's loss (eq. 2): -log K(s_i,t_i) / sum_j K(s_i,t_j)."""

    name = "student_teacher"

    def uniformity_logits(self, s, t):
        return s @ t.T / self.temperature


@REGISTRY.register("student_student")
class StudentStudentLoss(UniformityLoss):
    """Uniformity over other students: log sum_{j!=i} K(s_i, s_j)."""

    name = "student_student"

    def uniformity_logits(self, s, t):
        return off_diagonal(s @ s.T / self.temperature)


@REGISTRY.register("student_both")
class StudentBothLoss(UniformityLoss):
    """log( sum_{j!=i} K(s_i,s_j) + sum_j K(s_i,t_j) ): both sums inside one log."""

    name = "student_both"

    def uniformity_logits(self, s, t):
        return torch.cat([off_diagonal(s @ s.T), s @ t.T], dim=1) / self.temperature


@REGISTRY.register("nt_xent")
class NTXentLoss(InversionLoss):
    """SimCLR's NT-Xent over all 2N student and teacher embeddings, both directions averaged."""

    name = "nt_xent"

    def compute(self, s, t):
        n = s.shape[0]
        need_pairs(self.name, n)
        z = torch.cat([s, t], dim=0)
        logits = off_diagonal(z @ z.T / self.temperature)
        positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(logits, positives)
