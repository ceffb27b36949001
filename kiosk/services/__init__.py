"""Use-cases that combine the domain with ports (stores, clocks, hashers)."""
