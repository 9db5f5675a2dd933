"""Secrets inside URLs are masked wherever cinv writes or prints them."""

import pytest

from cinv.secrets import redact, redact_url, redacted


@pytest.mark.parametrize("url, shown", [
    ("postgresql+psycopg://cinv:SECRET@db:5432/optuna", "postgresql+psycopg://cinv:***@db:5432/optuna"),
    ("postgresql+psycopg://cinv@db/optuna?password=SECRET&sslmode=require",
     "postgresql+psycopg://cinv@db/optuna?password=***&sslmode=require"),
    ("postgresql://db/optuna?sslpassword=SECRET", "postgresql://db/optuna?sslpassword=***"),
    ("http://user:SECRET@127.0.0.1:5000", "http://user:***@127.0.0.1:5000"),
    ("https://SECRET@mlflow.example.org", "https://***@mlflow.example.org"),
    ("https://host/x?token=SECRET", "https://host/x?token=***"),
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),  # nothing secret: byte for byte
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    # a password typed raw with a character that ends the authority: masked before any parsing
    ("http://alice:pa#S3CRET@127.0.0.1:9", "http://alice:***@127.0.0.1:9"),
    ("http://alice:pa/S3CRET@127.0.0.1:9/api", "http://alice:***@127.0.0.1:9/api"),
    ("http://alice:pa?S3CRET@127.0.0.1:9", "http://alice:***@127.0.0.1:9"),
    ("postgresql://cinv:p@ss#S3CRET@db:5432/optuna?sslmode=require",
     "postgresql://cinv:***@db:5432/optuna?sslmode=require"),
    ("https://tok/S3CRET@mlflow.example.org/x", "https://***@mlflow.example.org/x"),
    ("sqlite:////tmp/a@b/mlflow.db", "sqlite:////tmp/a@b/mlflow.db"),  # an "@" in a path, no userinfo
    # quotes, spaces, '<', '>' and a bad '%' end a URL inside a message: masked whole, user kept when clean
    ("http://alice:pa'ss@127.0.0.1:9", "http://alice:***@127.0.0.1:9"),
    ("http://alice:p a<ss>@h:9/x", "http://alice:***@h:9/x"),
    ("http://tok3n#AB@h", "http://***@h"),
    ("postgresql://u:p%zz@h/db", "postgresql://u:***@h/db"),
])
def test_urls_are_masked_and_otherwise_kept(url, shown):
    assert redact_url(url) == shown


def test_urls_inside_messages_and_configs():
    line = "MLflow store http://u:SECRET@h:9 cannot be used: connection refused"
    assert redact(line) == "MLflow store http://u:***@h:9 cannot be used: connection refused"
    config = {"storage": "postgresql://u:SECRET@h/db", "nested": {"uri": ["mysql://u:SECRET@h/db"]}, "n": 3}
    assert "SECRET" not in str(redacted(config)) and redacted(config)["n"] == 3
