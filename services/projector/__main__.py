"""``python -m services.projector``: one projector in the foreground."""

from services.projector.service import main

main()
