"""The notary: the stream's Merkle tree, kept as the stream grows, and signed checkpoints of it.

``service.py`` is the ``ledger up`` component. It imports ``events``, ``replay`` and
``services.infra``.
"""
