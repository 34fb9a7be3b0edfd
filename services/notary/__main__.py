"""``python -m services.notary``: one notary in the foreground."""

from services.notary.service import main

main()
