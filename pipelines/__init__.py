"""Raw datasets -> session tables and samples, shift operators, the Ray Data feed (docs/data.md)."""
