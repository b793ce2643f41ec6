"""`marketplane feed validate`: a supplier checks its file offline, against a category file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import BOOKS_SCHEMA

CATEGORY = {"id": "cat_books", "slug": "books", "name": "Books", "attribute_schema": BOOKS_SCHEMA}
GOOD = "sku,title,category,price,currency,quantity,attr.author,attr.year,attr.isbn\n"
GOOD += "V1,Valid book,books,9.99,EUR,1,Ada Hartmann,2001,9780306406157\n"


def validate(tmp_path: Path, content: str, *extra: str) -> subprocess.CompletedProcess[str]:
    feed = tmp_path / "feed.csv"
    feed.write_text(content)
    category = tmp_path / "books.json"
    category.write_text(json.dumps(CATEGORY))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPLANE_")}
    env["MARKETPLANE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/never.db"
    argv = [sys.executable, "-m", "marketplane", "feed", "validate", str(feed)]
    return subprocess.run(
        [*argv, "--category", str(category), *extra],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_clean_file_validates_offline(tmp_path: Path) -> None:
    # when
    done = validate(tmp_path, GOOD)
    # then
    assert done.returncode == 0, done.stderr
    assert "1 rows, 1 valid, 0 with errors" in done.stdout
    assert not (tmp_path / "never.db").exists()  # no database was touched


def test_each_bad_row_is_shown_with_its_line_and_the_exit_code_says_so(tmp_path: Path) -> None:
    # given
    bad = GOOD + "V2,Too precise,books,9.999,EUR,1,Ada,2001,9780306406157\nV3,short\n"
    # when
    done = validate(tmp_path, bad, "--json")
    # then
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["counts"] == {"read": 3, "valid": 1, "deletes": 0, "failed": 2}
    assert [(e["line"], e["code"]) for e in result["errors"]] == [
        (3, "currency_precision"),
        (4, "ragged_row"),
    ]
