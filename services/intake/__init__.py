"""The intake service: field offices' commands in, validated events into the stream.

``service.py`` is the service (its decisions are the domain's, ``events/decisions.py``);
``python -m services.intake`` runs one instance. It imports ``events`` and ``services.infra``.
"""
