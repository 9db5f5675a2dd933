"""``embed``: every image under a folder, embedded by a logged encoder, as Parquet rows (file, embedding)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import mlflow
import pandas as pd
from pydantic import AfterValidator, Field

from cinv.config.options import Corruption, ModelURI, RunOptions, folder
from cinv.corruption import from_spec
from cinv.errors import ConfigError
from cinv.runtime import generator, resolve_device
from cinv.tracking import schema
from cinv.tracking.models import STUDENT_MODEL
from cinv.tracking.runs import log_json
from cinv.tracking.serving import image_files, load_encoder

log = logging.getLogger(__name__)


def output_file(value: str) -> str:
    """Checked before any image is read: a folder, or a file under a file, fails only after the work."""
    path = Path(value).expanduser()
    if path.is_dir():
        raise ValueError(f"{value} is a folder; give the Parquet file to write, e.g. {Path(value) / 'embeddings.parquet'}")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ValueError(f"{value} cannot be created: {parent} is a file")
    if parent is not None and not os.access(parent, os.W_OK):
        raise ValueError(f"{value} cannot be created: {parent} is read-only")
    return value


class EmbedConfig(RunOptions):
    """Embed a folder of images with a logged encoder; write file names and embeddings to Parquet."""

    model: ModelURI = Field(f"models:/{STUDENT_MODEL}@champion", description="encoder model URI",
                            json_schema_extra={"mlproject": "uri"})
    images: Annotated[str, AfterValidator(folder)] = Field(description="folder of images (searched recursively)",
                                                           json_schema_extra={"mlproject": "path"})
    corruption: Corruption = Field("none", description="corrupt the images first, e.g. random_mask(fraction=0.9)")
    batch_size: int = Field(256, ge=1, le=65_536, description="images per encoder pass")
    output: Annotated[str, AfterValidator(output_file)] = Field(
        "embeddings.parquet", min_length=1, description="Parquet file to write (also logged as an artifact)")
    skip_bad_images: bool = Field(False, description="leave out unreadable image files (listed in skipped_images.json, "
                                  "counted in the metric skipped_images) instead of stopping")


def run(cfg: EmbedConfig) -> None:
    """The ``embed`` command: every image under a folder, as Parquet rows (file, embedding)."""
    device = resolve_device(cfg.device)
    mlflow.set_tags({schema.STAGE: "embed", schema.MODEL: cfg.model})
    encoder = load_encoder(cfg.model, device)
    if encoder.metadata.get("kind") != "encoder":
        raise ConfigError(f"model: {cfg.model} is a {encoder.metadata.get('kind', 'model')}, not an encoder")
    root = Path(cfg.images).expanduser()
    files = image_files(root)
    corruption = from_spec(cfg.corruption)
    skipped: list[Path] | None = [] if cfg.skip_bad_images else None
    embeddings = encoder.embed_files(files, cfg.batch_size, corruption, generator(device, cfg.seed, "embed"), skipped=skipped)
    if skipped is not None:
        mlflow.log_metric("skipped_images", len(skipped))
        if skipped:
            log_json({"skipped": [str(p) for p in skipped]}, "skipped_images.json")
            log.warning("left out %d unreadable image file(s), listed in skipped_images.json: %s%s", len(skipped),
                        ", ".join(str(p.relative_to(root)) for p in skipped[:5]), " ..." if len(skipped) > 5 else "")
        left_out = set(skipped)
        files = [p for p in files if p not in left_out]
    table = pd.DataFrame({"file": [str(p.relative_to(root)) for p in files], "embedding": list(embeddings.numpy())})
    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(output, index=False)
    mlflow.log_artifact(str(output))
    mlflow.log_metrics({"images": len(files), "embed_dim": embeddings.shape[1]})
    print(f"wrote {len(files)} embeddings of dimension {embeddings.shape[1]} to {output}")
