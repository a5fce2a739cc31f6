"""The perpetual-futures simulation engine: numba kernels, records, margin math."""
