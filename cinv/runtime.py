"""Device, precision, seeds and random draws: the few decisions every loop shares, made once."""

from __future__ import annotations

import contextlib
import hashlib
import numbers
import os
import signal
import threading
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Literal

import torch

from cinv.errors import Terminated


class _Termination:
    """SIGTERM and Ctrl-C (SIGINT), turned into [Terminated][cinv.errors.Terminated] and
    ``KeyboardInterrupt``: at once, or, inside [deferred][] (training: a step and its
    checkpoint), once the caller has saved where it stands. A second signal does not wait."""

    def __init__(self):
        self.depth, self.requested = 0, None

    def handler(self, signum, frame) -> None:
        if self.depth and self.requested is None:
            self.requested = signum
        else:
            self.requested = None
            self.raise_for(signum)

    @staticmethod
    def raise_for(signum) -> None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated("terminated (SIGTERM)")

    @contextlib.contextmanager
    def deferred(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def pending(self) -> bool:
        """A signal arrived during a deferred block: the caller stops (``stop``) once its state is saved."""
        return self.requested is not None

    def stop(self) -> None:
        signum, self.requested = self.requested, None
        self.raise_for(signum)

    @contextlib.contextmanager
    def installed(self):
        """SIGTERM and SIGINT handled this way while the block runs (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.requested = None


def pause_point(step: int, desc: str) -> None:
    """A deterministic trigger for tests of signals and resume: with ``CINV_PAUSE_AFTER_STEP=N``
    and ``CINV_PAUSE_FILE=path`` (and ``CINV_PAUSE_IN=<trainer>``, e.g. student, to skip other
    trainings), training writes ``path.reached`` after optimiser step N (and its checkpoint) and
    waits until ``path`` exists or a signal arrives; a signal sent then lands at a known step
    instead of racing the training."""
    import os
    import time
    from pathlib import Path

    at, where, trainer = (os.environ.get(k) for k in ("CINV_PAUSE_AFTER_STEP", "CINV_PAUSE_FILE", "CINV_PAUSE_IN"))
    if not (at and where) or step != int(at) or (trainer and trainer != desc):
        return
    Path(f"{where}.reached").write_text(str(step))
    while not Path(where).exists() and not termination.pending():
        time.sleep(0.01)


termination = _Termination()


def resolve_device(name: str = "auto") -> torch.device:
    """The device a command runs on; one that this machine does not have is an error here, before any work."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use device=cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} requested but Apple's MPS is not available; use device=cpu or auto")
    return device


Precision = Literal["auto", "fp32"]


def native_bf16(device: torch.device) -> bool:
    """CUDA, or a CPU with bf16 dot-product instructions (AVX512-BF16, AMX): elsewhere bf16 is emulated and slower."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


Role = Literal["train", "frozen", "eval"]


@dataclass(frozen=True)
class Autocast:
    """A command's precision, decided once by [resolve_precision][] and handed to every loop.

    One autocast dtype per role (None: float32): ``train`` for the loops that update weights,
    ``frozen`` for frozen encoders feeding training (teacher targets, probe features), ``eval``
    for evaluation. Loops ask ``context(role)`` and never look at the device themselves.
    """

    device_type: str = "cpu"
    train: torch.dtype | None = None
    frozen: torch.dtype | None = None
    eval: torch.dtype | None = None

    def context(self, role: Role):
        dtype = getattr(self, role)
        return contextlib.nullcontext() if dtype is None else torch.autocast(self.device_type, dtype=dtype)

    def describe(self) -> str:
        """E.g. ``train=bf16, frozen=bf16, eval=bf16`` (logged beside the run's params)."""
        name = lambda d: "fp32" if d is None else str(d).removeprefix("torch.").replace("bfloat16", "bf16")
        return ", ".join(f"{role}={name(getattr(self, role))}" for role in ("train", "frozen", "eval"))


FP32 = Autocast()


def resolve_precision(device: torch.device, precision: Precision = "auto") -> Autocast:
    """``auto``: bf16 autocast everywhere on CUDA (the paper ran CLIP in 16-bit). On a CPU with
    native bf16, only for frozen encoders feeding training: about 3x faster, and top-1 holds
    (benchmarks/throughput.py); CPU training and evaluation stay fp32, so a logged (fp32) model
    re-evaluated later gives the run's own numbers. ``fp32``: no autocast anywhere, and no TF32
    either, once a run applies the decision ([use_precision][]). No side effect: a dry run
    decides it too."""
    if precision == "fp32" or not native_bf16(device):
        return Autocast(device.type)
    bf16 = torch.bfloat16
    if device.type == "cuda":
        return Autocast(device.type, train=bf16, frozen=bf16, eval=bf16)
    return Autocast(device.type, frozen=bf16)


def use_precision(device: torch.device, precision: Precision = "auto") -> Autocast:
    """What a run calls once: the decision of [resolve_precision][], applied (``fp32``: TF32 off)."""
    if precision == "fp32":
        full_fp32()
    return resolve_precision(device, precision)


def full_fp32() -> None:
    """float32 means float32: on Ampere and newer GPUs, cuDNN convolutions use TF32 (10-bit
    mantissa) by default and matmuls may too; both are switched off for the process (a CPU
    ignores the flags, so a CPU run sets them as well and a test can see it)."""
    # The legacy flags: PyTorch 2.9+'s per-backend ``fp32_precision`` settings, once used, make the
    # legacy getters (which other libraries still read) raise on a mix of the two APIs.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def tf32_allowed() -> bool:
    """Whether float32 matmuls or cuDNN convolutions may run in TF32 (what [full_fp32][] turns off)."""
    return bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)


def channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """The model, in place, in NHWC (the layout BatchStream's batches come in): tensor-core
    convolutions on CUDA and oneDNN's on CPU both run fastest in it (EfficientNet-Lite0 inference
    on a 2-core CPU: 1.6x). Buffers it copies are normal tensors even when called under
    ``inference_mode`` (feature extraction), so the model can still be attacked afterwards."""
    with torch.inference_mode(False):
        return model.to(memory_format=torch.channels_last)


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module, *, freeze: bool = False) -> Iterator[torch.nn.Module]:
    """Eval mode inside, each module's own previous mode after (a frozen teacher stays eval).

    With ``freeze``, parameters stop requiring gradients inside and their ``.grad`` is restored
    after: ART zeroes and accumulates parameter gradients, which must not leak into training.
    """
    modes = [(m, m.training) for m in model.modules()]
    params = list(model.parameters()) if freeze else []
    saved = [(p, p.requires_grad, p.grad) for p in params]
    model.eval()
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, requires_grad, grad in saved:
            p.requires_grad_(requires_grad)
            p.grad = grad


def derive_seed(*keys: int | str) -> int:
    """A well-mixed 63-bit seed from a tuple of keys, e.g. (seed, "corrupt", epoch).

    The whole key is hashed (SHA-256 of its typed encoding): purposes that share a prefix
    ("probe", "probe head") or differ only in type (1, "1") get unrelated seeds."""
    if not keys or any(isinstance(k, bool) or not isinstance(k, (numbers.Integral, str)) for k in keys):
        raise TypeError(f"derive_seed takes integers and strings; got {keys!r}")
    # Each key typed and length-prefixed: an injective encoding of the tuple.
    parts = [("s", k) if isinstance(k, str) else ("i", str(int(k))) for k in keys]
    encoded = "".join(f"{kind}{len(text)}:{text}" for kind, text in parts).encode()
    return int.from_bytes(hashlib.sha256(encoded).digest()[:8], "little") >> 1


def generator(device: torch.device | str, *keys: int | str) -> torch.Generator:
    """An explicit generator per purpose and epoch/draw: no RNG state is shared or copied."""
    return torch.Generator(device=device).manual_seed(derive_seed(*keys))


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """U[0, 1) from ``generator`` on its own device (a CPU generator still serves CUDA images),
    or from the global RNG without one."""
    if generator is None:
        return torch.rand(shape, device=device, dtype=dtype)
    return torch.rand(shape, generator=generator, device=generator.device, dtype=dtype).to(device)


def normal(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
    """N(0, 1) as [uniform][] draws U[0, 1)."""
    if generator is None:
        return torch.randn(shape, device=device)
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def progress(iterable, **options):
    """A progress bar (tqdm) on a terminal or in a notebook; nothing elsewhere (a log file, CI, a
    pipe), where each redraw would be one more line: a 4-minute main job wrote 1,344 of them. The
    stages still say what they did in one log line each. ``$CINV_PROGRESS=1`` keeps the bars."""
    import os
    import sys

    from tqdm.auto import tqdm

    shown = sys.stderr.isatty() or "ipykernel" in sys.modules or os.environ.get("CINV_PROGRESS") == "1"
    return tqdm(iterable, disable=True if not shown else None, **options)


@contextlib.contextmanager
def patched(mapping: MutableMapping, values: dict | None = None, keep: Iterable = ()) -> Iterator[None]:
    """``mapping`` with ``values`` set for the block; those keys and the ones named in ``keep`` are
    as they were before it afterwards (absent where they were absent), whatever the block set."""
    values = values or {}
    missing = object()
    saved = {key: mapping.get(key, missing) for key in {*values, *keep}}
    mapping.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is missing:
                mapping.pop(key, None)
            else:
                mapping[key] = value


def environ(values: dict[str, str] | None = None, keep: Iterable[str] = ()) -> contextlib.AbstractContextManager:
    """Environment variables set to ``values`` for the block, restored with those named in ``keep``
    afterwards (a notebook runs more than one command in one process)."""
    return patched(os.environ, values, keep)
