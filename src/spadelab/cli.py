"""The ``spadelab`` command: one entry point, one subcommand per job.

Hydra subcommands take Hydra overrides (``spadelab train model=pix2pixhd_pp norm=batch``).
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("spadelab.commands.train", "train a model (Hydra overrides)"),
    "synthesize": ("spadelab.commands.synthesize", "label maps in, images out"),
    "evaluate": ("spadelab.commands.evaluate", "mIoU / accuracy / FID / fd_judge of a run"),
    "params": ("spadelab.commands.params", "parameter counts next to the paper's"),
    "import-official": (
        "spadelab.commands.import_official",
        "convert an official SPADE checkpoint",
    ),
    "data": ("spadelab.commands.data", "data preview | check | export-synthetic"),
    "sweep": ("spadelab.tables.sweep", "run a results table (experiments/*.yaml) as one multirun"),
    "report": ("spadelab.tables.report", "gather a sweep into a results table"),
    "bench": ("spadelab.commands.bench", "time and memory of a training iteration"),
    "studio": ("spadelab.studio.cli", "paint a label map in the browser, see each run's image"),
    "study": ("spadelab.studio.study_cli", "Table 2 preference study: create | serve | report"),
}


def usage() -> str:
    lines = ["usage: spadelab COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<16}{help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"spadelab: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    if hasattr(module, "cli"):
        result = module.cli(rest)
    else:
        # Hydra apps read their overrides from sys.argv. argv[0] must be a runnable script:
        # Lightning's DDP launcher starts the other ranks as `python argv[0] ...`.
        sys.argv = [module.__file__, *rest]
        result = module.main()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
