"""Trade-request validation, fills, positions, pending orders, deals."""
