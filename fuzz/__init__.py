"""Coverage-guided fuzz targets (atheris) for quicish; ``python -m fuzz.run`` runs them.

Each target module has ``one_input(data)`` (raises only on a real bug: an exception or a
broken invariant; the acceptable outcomes are swallowed) and ``seeds()`` (name, bytes)
pairs written to ``tests/corpus/<target>/``. The same functions replay the corpus in
``tests/test_fuzz_regressions.py``, so nothing here imports atheris.
"""
