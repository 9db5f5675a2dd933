"""Rebuild the embedded CIFAR-10 subset shipped in ``cinv/data/embedded/``.

The JPEG bytes are copied as they are (no re-encoding), so the subset is byte-identical to the
source archive's files. Selection is by file order, which in CIFAR-10 is unrelated to content:

    python -m cinv.data.build_embedded --source ../shared/data/cifar10-jpeg75.tar.gz
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

OUT = Path(__file__).with_name("embedded") / "cifar10_subset.tar.gz"
# Per class: train and val come from CIFAR-10 train (disjoint ranges), test from CIFAR-10 test.
COUNTS = {"train": 600, "val": 100, "test": 200}


def build(source: Path, out: Path = OUT) -> int:
    """Two streaming passes over the gzip archive: list, then copy the picked files."""
    with tarfile.open(source) as tar:
        names = [m.name.lstrip("./") for m in tar if m.isfile() and m.name.endswith(".jpg")]
    by_split_class: dict[tuple[str, str], list[str]] = {}
    for name in names:
        split, cls, _ = Path(name).parts[-3:]
        by_split_class.setdefault((split, cls), []).append(name)
    picks: dict[str, str] = {}  # source name -> name in the subset
    for cls in sorted({cls for _, cls in by_split_class}):
        train = sorted(by_split_class[("train", cls)])
        test = sorted(by_split_class[("test", cls)])
        chosen = {
            "train": train[: COUNTS["train"]],
            "val": train[COUNTS["train"] : COUNTS["train"] + COUNTS["val"]],
            "test": test[: COUNTS["test"]],
        }
        for split, split_names in chosen.items():
            if len(split_names) != COUNTS[split]:
                raise SystemExit(f"{source}: only {len(split_names)} {split} images for {cls}")
            picks.update({n: f"{split}/{cls}/{Path(n).name}" for n in split_names})
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(source) as tar, tarfile.open(out, "w:gz", compresslevel=9) as dst:
        for member in tar:
            target = picks.get(member.name.lstrip("./"))
            if target is None:
                continue
            data = tar.extractfile(member).read()
            info = tarfile.TarInfo(target)
            info.size, info.mtime = len(data), 0
            dst.addfile(info, io.BytesIO(data))
    return len(picks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="cifar10-jpeg75.tar.gz")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    n = build(args.source, args.out)
    print(f"wrote {n} images to {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
