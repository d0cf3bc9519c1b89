"""The risk officer's CLI (``cfd-risk``, ``python -m risk``): reads the book (admin API,
database or snapshot file) into a copy, runs analytics and what-if scenarios on it, and acts
through the admin API."""
