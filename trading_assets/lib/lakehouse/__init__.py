"""The trade lakehouse: raw bulk files → bronze (as received) → silver (typed) → bars, on Iceberg.

Pure library code: no Dagster imports. The Dagster assets in ``trading_assets.defs`` call the
stage functions in :mod:`trading_assets.lib.lakehouse.pipeline`.
"""
