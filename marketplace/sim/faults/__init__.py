"""Fault plans: seeded chaos for simulations (and, through them, experiments).

``plan`` reads and validates a TOML plan and draws its schedule from a seed; ``kinds`` holds
the fault kinds; ``injectors`` does each kind to a running marketplace; ``runner`` runs a
schedule beside a load; ``recovery`` measures what each fault did to the run.
"""
