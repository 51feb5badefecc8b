"""Nested data normalization: flatten structs, lists into child tables."""
