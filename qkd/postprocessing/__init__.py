"""Post-processing of a link's raw key: sifting, estimation, Cascade, verification, Toeplitz
privacy amplification and the finite-key length.

Hazmat: each stage takes explicit parameters and plain arrays or bytes.
"""
