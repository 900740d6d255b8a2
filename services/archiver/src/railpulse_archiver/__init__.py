"""railpulse_archiver: the Parquet lake, its Glue catalogue and the warehouse (see README.md).

Write path: `handler` (KCL) → `archive` (buffer, exactly-once flushes, `manifest`) → `lake`
(partitions, keys, Parquet via `tables`) → `store` (S3) and `catalog` (Glue).
Read path: `query` (DuckDB over the lake), `warehouse` (loader, ledger, views), `report`, `share`
(what the `railpulse query | export | report | load` commands run).
"""

__all__: list[str] = []
