"""``python -m personas.cli``: the ``personas`` command."""

from personas.cli import main

main()
