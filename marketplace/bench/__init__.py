"""The benchmarks (drivers on top of the marketplace): ``writer``, ``checkout``, ``gateway`` and
``relay``, each runnable as ``python -m marketplace.bench.<name>``; ``stats`` and ``cpu`` are
their shared arithmetic and CPU accounting. See README.md here for what each measures and the
figures measured so far.
"""
