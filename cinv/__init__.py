"""cinv: robust image representations by contrastive inversion of a frozen pretrained teacher.

The pipeline reads as the package does: ``data`` -> ``distortions`` -> ``encoders`` -> ``losses``
-> ``training`` -> ``probe`` -> ``evaluation`` -> ``tracking``; ``pipeline`` chains the stages
and ``cli`` turns each command's typed config into an entry point.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so that `import cinv` stays light: the MLflow/torch imports happen on first use.
    if name == "load_encoder":
        from cinv.serving import load_encoder

        return load_encoder
    if name in ("run_command", "CommandFailed"):
        from cinv import cli

        return getattr(cli, name)
    raise AttributeError(f"module 'cinv' has no attribute {name!r}")
