"""Session rows: their typed schema and the atomic Parquet part files they are written to."""
