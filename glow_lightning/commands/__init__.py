"""One module per command (``train``, ``test``, ``sample``, ``interpolate``, ``manipulate``,
``ablate``), each with ``HELP`` and ``main(words) -> int``; :mod:`.args` parses their words and
:mod:`.checkpoint` holds what the checkpoint-driven ones share. Importing a command module is
cheap: Lightning and the models load when the command runs."""
