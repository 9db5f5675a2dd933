"""Pretrained weights, loaded without running pickled code: state-dict files with
``weights_only=True``, and the hub helpers that make an offline machine fail fast with a message
that says how to provide the weights."""

from __future__ import annotations

import contextlib
import logging
import socket
from pathlib import Path

import torch

from cinv.errors import WeightsUnavailableError

__all__ = ["RANDOM_INIT", "weights_path", "load_state_dict", "host_reachable", "offline_hub_when_unreachable"]

RANDOM_INIT = "none"


def weights_path(weights: str) -> Path | None:
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    if path.suffix in {".pt", ".pth", ".bin", ".safetensors", ".ckpt"} or "/" in weights:
        raise WeightsUnavailableError(f"weights file {weights} not found")
    return None


def load_state_dict(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailableError(f"cannot load weights {path}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsUnavailableError(f"weights {path} hold a {type(state).__name__}, not a state dict")
    return state


def host_reachable(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def offline_hub_when_unreachable():
    """Without network, make huggingface_hub use its cache at once instead of retrying for a minute."""
    import huggingface_hub.constants as hub

    saved = hub.HF_HUB_OFFLINE
    if not host_reachable("huggingface.co"):
        hub.HF_HUB_OFFLINE = True
    previous = logging.root.manager.disable
    logging.disable(logging.ERROR)  # open_clip logs each failed download before raising
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = saved
        logging.disable(previous)


