"""``embed``: every image under a folder, embedded by a logged encoder, as Parquet rows (file, embedding)."""

from __future__ import annotations

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
from cinv.tracking.serving import image_files, load_encoder


class EmbedConfig(RunOptions):
    """Embed a folder of images with a logged encoder; write file names and embeddings to Parquet."""

    model: ModelURI = Field(f"models:/{STUDENT_MODEL}@champion", description="encoder model URI",
                            json_schema_extra={"mlproject": "uri"})
    images: Annotated[str, AfterValidator(folder)] = Field(description="folder of images (searched recursively)",
                                                           json_schema_extra={"mlproject": "path"})
    corruption: Corruption = Field("none", description="corrupt the images first, e.g. random_mask(fraction=0.9)")
    batch_size: int = Field(256, ge=1, le=65_536, description="images per encoder pass")
    output: str = Field("embeddings.parquet", min_length=1, description="Parquet file to write (also logged as an artifact)")


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
    embeddings = encoder.embed_files(files, cfg.batch_size, corruption, generator(device, cfg.seed, "embed"))
    table = pd.DataFrame({"file": [str(p.relative_to(root)) for p in files], "embedding": list(embeddings.numpy())})
    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(output, index=False)
    mlflow.log_artifact(str(output))
    mlflow.log_metrics({"images": len(files), "embed_dim": embeddings.shape[1]})
    print(f"wrote {len(files)} embeddings of dimension {embeddings.shape[1]} to {output}")
