"""Placements inside one process: a step's batch split across the cores.

``split`` cuts a batch into parts and runs them on threads, ``workers`` in forked
worker processes, ``parts`` holds what both share (the part contexts, the exchange
of sums over the batch, adding the parts' results up) and ``census`` measures a
step on its first run to decide whether splitting it pays. A step is a function
(``hpnn.training.step.Step``): nothing here imports ``models`` or ``layers``.
"""
