"""``python -m services.intake``: one intake instance in the foreground."""

from services.intake.service import main

main()
