"""Supply feeds: files of offers (CSV, JSON Lines, JSON), mapped, validated row by row and
applied in batches, as runs with history; fetched from registered URLs on a schedule."""
