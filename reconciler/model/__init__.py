"""Frozen, typed values shared by every stage of a pass. Imports nothing but the standard library."""
