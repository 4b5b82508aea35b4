"""The interop scenario matrix (QUIC Interop Runner scenarios) for quicish.

``python interop/run.py --all --output interop/RESULTS.md`` runs every scenario through the
netem relay for quicish/quicish and quicish against aioquic in both roles. Python API:
`interop.harness.run_matrix`, `interop.run.run_fast`, `interop.scenarios.build`.
"""
