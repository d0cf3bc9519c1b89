"""Accounts and the double-entry ledger."""
