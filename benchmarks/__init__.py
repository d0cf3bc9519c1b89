"""Benchmarks: ``python -m benchmarks`` runs the liquidation-loop suite
(``benchmarks.liquidation``); ``benchmarks.store_bench`` measures the store."""
