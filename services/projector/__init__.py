"""The live projector: the stream's events folded into the SQLite projections as they arrive.

``service.py`` is the service; ``python -m services.projector`` runs one alone. It imports
``events``, ``projections`` and ``services.infra``.
"""
