"""Configuration: the typed-config machinery (``base``: strict models, flat parameters, presets,
runtime and selection markers) and the option groups and parameter types that commands and
methods share (``options``). Each method's options and presets live with the method, each
command's config with the command; ``cinv.settings`` resolves them together; ``mlproject``
writes MLproject from the command configs."""

from cinv.config.base import (
    Paper,
    Presets,
    Runtime,
    Section,
    Select,
    Strict,
    build,
    flat_fields,
    preset_keys,
    to_flat,
)
from cinv.errors import ConfigError

__all__ = ["ConfigError", "Paper", "Presets", "Runtime", "Section", "Select", "Strict", "build", "flat_fields",
           "preset_keys", "to_flat"]
