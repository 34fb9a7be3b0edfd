"""What a field office runs: the client that signs and sends commands, and the file importer.

``office.py`` is the client, ``outbox.py`` keeps its commands until intake has answered them,
``delivery.py`` sends through the outbox, ``importer.py`` reads JSON Lines and CSV files into
commands,
``fields.py`` parses ``--set`` values, and ``errors.py`` turns intake's refusals into
exceptions. It imports ``events`` and ``services.infra``.
"""
