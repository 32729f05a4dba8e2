"""Raw datasets -> session tables and samples, shift operators, the Ray Data feed (DESIGN §2)."""
