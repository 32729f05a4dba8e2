"""Raw datasets -> session tables and samples, shift operators and Ray Data feeds (DESIGN §2)."""
