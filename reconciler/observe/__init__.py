"""Observe stage: one batched probe per target, parsed into typed observations."""
