"""Numba kernels over struct-of-arrays state. Imports only numpy and numba.

Conventions: prices are int64 grid units, volumes int64 grid units (signed: + long,
- short), settings are arguments (cached kernels freeze globals), business outcomes are
status codes in output arrays, ``out_*`` arrays come last.
"""
