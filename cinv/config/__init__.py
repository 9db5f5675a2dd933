"""Configuration: the typed-config machinery (``base``: strict models, flat parameters, presets)
and the option groups and parameter types that commands and methods share (``options``).
Each method's options live with the method, each command's config with the command."""

from cinv.config.base import Presets, Section, Strict, build, flat_fields, paper_deviations, preset_keys, to_flat
from cinv.errors import ConfigError

__all__ = ["ConfigError", "Presets", "Section", "Strict", "build", "flat_fields", "paper_deviations", "preset_keys", "to_flat"]
