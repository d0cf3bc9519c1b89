"""HTTP API (FastAPI) of the CFD engine and ``api.mt5``, the MetaTrader5-style client."""
