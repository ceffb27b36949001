"""The inspector bundle's standalone verifier ships as data inside this package."""
