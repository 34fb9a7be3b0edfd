"""The ``ledger`` command: ``main.py`` is the group, each other module the commands of one user.

The one room that may import every other. Nothing imports it except the console script
(``ledger = services.cli.main:main``) and the tests.
"""
