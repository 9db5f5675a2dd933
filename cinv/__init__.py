"""cinv: robust image representations by contrastive inversion of a frozen pretrained teacher.

The pipeline reads as the package does: ``data`` -> ``distortions`` -> ``encoders`` -> ``losses``
-> ``training`` -> ``probe`` -> ``evaluation`` -> ``tracking``; ``pipeline`` chains the stages
and ``cli`` turns each command's typed config into an entry point.
"""

__version__ = "0.1.0"
