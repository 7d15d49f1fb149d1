"""Carry out a plan's I/O actions through the targets' runners."""
