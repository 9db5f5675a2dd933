"""Entry point `report`: `mlflow run . -e report -P key=value`, or `python entrypoints/report.py --help`."""

import sys
from pathlib import Path

# Run the checkout's own cinv, even where an environment cached by MLflow installed another copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cinv.cli import main

if __name__ == "__main__":
    main("report")
