"""Packing: trials of one critic shape trained as one population.

What this room owns: ``plan`` (what a sweep packs and repeats: ``--pack`` and ``--repeat`` resolved
before Ray starts, without Ray), ``registry`` (the sweep's named actor that places each packed trial
in a population), ``executor`` (the actor that steps a ``Population`` for its members) and ``client``
(a packed trial's side: hands its epochs to the executor and takes its reports back).

Imports: ``plan`` imports the engine's config and no Ray (a --dry-run plans without it); the actors import Ray
and load the engine inside their own processes, so that a packed trial's process never imports torch.
"""
