"""One module per ``spadelab`` subcommand (the dispatcher is ``spadelab.cli``).

Hydra apps (``train``, ``evaluate``, ``synthesize``) take Hydra overrides and report errors
through ``runtime.run_command``. The others take ``key=value`` arguments, parsed by
:mod:`spadelab.commands.args` (their own settings; the rest are Hydra overrides of the training
config where the command composes one), and report errors through ``runtime.command_error``:
one line ``spadelab COMMAND: error: ...`` and exit code 2 (1 when the data itself is bad).
"""
