"""Hakon's storage: the DuckDB catalog, and (as it grows) WAL, head, blocks, rollups."""
