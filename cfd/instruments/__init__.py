"""Symbol specifications, the default catalogue and the symbol table (name -> index)."""

from cfd.instruments.spec import SymbolSpec, load_catalogue

__all__ = ["SymbolSpec", "load_catalogue"]
