"""Each loss against small cases worked out by hand from METHODS.md / seed 000 appendix C."""

import math

import pytest
import torch

from cinv import losses

E = math.e
A = 1 / math.sqrt(2)


def value(name, s, t, tau):
    return losses.get(name, temperature=tau)(torch.tensor(s, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)).item()


# Case 1: s_i = t_i = e_i (orthonormal), tau = 1, so <s_i, t_j> = delta_ij.
IDENTITY = ([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]])
CASE1 = {
    "mse": -1.0,
    "student_teacher": math.log(1 + 1 / E),  # -log(e / (e + 1))
    "student_student": -1.0,  # -1 + log(e^0)
    "student_both": -1 + math.log(2 + E),  # -1 + log(e^0 + e^1 + e^0)
    "nt_xent": math.log(2 + E) - 1,  # every anchor: -log(e / (1 + e + 1))
}


@pytest.mark.parametrize("name", sorted(CASE1))
def test_case_identity(name):
    assert value(name, *IDENTITY, tau=1.0) == pytest.approx(CASE1[name], abs=1e-6)


# Case 2: unnormalised inputs, tau = 0.5. After normalising: s1 = (1, 0), s2 = (0, 1),
# t1 = (a, a), t2 = (0, 1) with a = 1/sqrt(2): <s1,t1> = a, <s1,t2> = 0, <s2,t1> = a, <s2,t2> = 1,
# <s1,s2> = 0, <t1,t2> = a.
S2 = [[3.0, 0.0], [0.0, 2.0]]
T2 = [[2.0, 2.0], [0.0, 5.0]]
TAU = 0.5
k = 1 / TAU
CASE2 = {
    "mse": -(A + 1) / 2,
    "student_teacher": ((-A * k + math.log(math.exp(A * k) + 1)) + (-k + math.log(math.exp(A * k) + math.exp(k)))) / 2,
    "student_student": (-A * k - k) / 2,  # each student has one other student, orthogonal: log e^0 = 0
    "student_both": ((-A * k + math.log(1 + math.exp(A * k) + 1)) + (-k + math.log(1 + math.exp(A * k) + math.exp(k)))) / 2,
    "nt_xent": (
        (-A * k + math.log(1 + math.exp(A * k) + 1))  # anchor s1: others s2, t1 (positive), t2
        + (-k + math.log(1 + math.exp(A * k) + math.exp(k)))  # anchor s2: s1, t1, t2 (positive)
        + math.log(3)  # anchor t1: s1 (positive), s2, t2 all at similarity a
        + (-k + math.log(1 + math.exp(k) + math.exp(A * k)))  # anchor t2: s1, s2 (positive), t1
    ) / 4,
}


@pytest.mark.parametrize("name", sorted(CASE2))
def test_case_unnormalised_inputs_with_temperature(name):
    assert value(name, S2, T2, tau=TAU) == pytest.approx(CASE2[name], abs=1e-5)


def test_student_teacher_is_alignment_over_tau_plus_uniformity():
    torch.manual_seed(0)
    s, t, tau = torch.randn(7, 5), torch.randn(7, 5), 0.3
    sn, tn = torch.nn.functional.normalize(s, dim=1), torch.nn.functional.normalize(t, dim=1)
    uniformity = torch.logsumexp(sn @ tn.T / tau, dim=1).mean()
    expected = losses.get("mse")(s, t) / tau + uniformity
    assert losses.get("student_teacher", temperature=tau)(s, t).item() == pytest.approx(expected.item(), abs=1e-5)


@pytest.mark.parametrize("name", sorted(CASE1))
def test_only_the_student_gets_gradients(name):
    s = torch.randn(6, 4, requires_grad=True)
    t = torch.randn(6, 4, requires_grad=True)
    losses.get(name)(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


@pytest.mark.parametrize("name", sorted(CASE1))
def test_scale_invariant_and_mean_over_batch(name):
    torch.manual_seed(1)
    s, t = torch.randn(5, 3), torch.randn(5, 3)
    f = losses.get(name, temperature=0.2)
    assert f(s * 7, t * 0.1).item() == pytest.approx(f(s, t).item(), abs=1e-5)
    assert f(s, t).ndim == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="temperature"):
        losses.get("student_teacher", temperature=0)
    with pytest.raises(ValueError, match="unknown loss 'clip'.*student_teacher"):
        losses.get("clip")
    with pytest.raises(ValueError, match="at least 2"):
        losses.get("nt_xent")(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        losses.get("mse")(torch.randn(4, 3), torch.randn(4, 2))
