"""Simulation: synthetic markets, workloads, faults and experiments (no Ray imports here)."""
