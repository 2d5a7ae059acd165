"""``spadelab studio ckpt=RUN|[RUN_A,RUN_B] [host=127.0.0.1] [port=7860] [device=cpu]``."""

from __future__ import annotations

import os
from collections.abc import Sequence

from spadelab.commands.args import parse_args, parse_int, parse_list
from spadelab.runtime import command_error

LOCALHOST = "127.0.0.1"


def cli(argv: Sequence[str]) -> int:
    argv = list(argv)
    if argv and argv[0] in ("-h", "--help", "help"):
        print(__doc__.strip("`\n "))
        return 0
    try:
        values, positional = parse_args(argv, "studio", ["ckpt", "host", "port", "device"])
        if positional or "ckpt" not in values:
            raise ValueError("pass ckpt=RUN_DIR (or ckpt=[RUN_A,RUN_B] for side by side)")
        host = values.get("host", LOCALHOST)
        port = parse_int(values.get("port", "7860"), "port")
        # Gradio is not used, but keep analytics off for any library that honours the flag.
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        import uvicorn

        from spadelab.studio.app import create_studio_app, load_studio

        studio = load_studio(parse_list(values["ckpt"]), device=values.get("device", "cpu"))
    except Exception as error:  # noqa: BLE001 - the one error path re-raises bugs
        return command_error("studio", error)
    for note in studio.notes:
        print(f"[studio] note: {note}")
    where = "this machine only" if host == LOCALHOST else f"ANY machine that can reach {host}"
    print(f"[studio] open http://{host}:{port}/ ({where}); Ctrl-C stops")
    uvicorn.run(create_studio_app(studio), host=host, port=port, log_level="warning")
    return 0
