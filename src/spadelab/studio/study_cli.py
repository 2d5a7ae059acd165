"""``spadelab study create|serve|report|simulate``: the paper's Table 2 preference study.

spadelab study create a=RUN_A b=RUN_B|real [data=NAME data.KEY=V] n=100 out=STUDY_DIR
spadelab study serve STUDY_DIR [host=127.0.0.1] [port=7861]
spadelab study report STUDY_DIR
spadelab study simulate STUDY_DIR raters=5 prefer_a=0.7 seed=0   # SCRIPTED votes, for tests
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence

from spadelab.commands.args import parse_args, parse_bool, parse_float, parse_int
from spadelab.runtime import command_error

USAGE = __doc__.split("\n\n", 1)[1].rstrip()
LOCALHOST = "127.0.0.1"


def _study_dir(positional: list[str], action: str) -> str:
    if len(positional) != 1:
        raise ValueError(f"pass one STUDY_DIR (got {positional or 'none'})")
    return positional[0]


def serve(study_dir: str, host: str = LOCALHOST, port: int = 7861) -> None:
    import uvicorn

    from spadelab.studio.study_db import Study
    from spadelab.studio.study_server import create_study_app

    study = Study(study_dir)
    app = create_study_app(study)
    where = "this machine only" if host == LOCALHOST else f"ANY machine that can reach {host}"
    print(f"[study] serving {study.dir} on http://{host}:{port}/ ({where}); Ctrl-C stops")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def simulate(study_dir: str, raters: int, prefer_a: float, seed: int) -> int:
    """Scripted raters that prefer A with probability ``prefer_a``: flagged scripted in the DB."""
    from spadelab.studio.study_db import Study, left_method

    if not 0.0 <= prefer_a <= 1.0:
        raise ValueError(f"prefer_a={prefer_a} must be in [0, 1]")
    study = Study(study_dir)
    rng = random.Random(seed)
    count = 0
    for r in range(raters):
        rater = f"scripted-{seed}-{r}"
        study.register(rater, scripted=True)
        state = study.next_pair(rater)
        while not state["done"]:
            wants = "a" if rng.random() < prefer_a else "b"
            left = left_method(study.secret, rater, state["pair"])
            state = study.vote(rater, state["pair"], "left" if left == wants else "right")
            count += 1
    print(f"[study] cast {count} SCRIPTED votes from {raters} scripted raters into {study.dir}")
    return count


def cli(argv: Sequence[str]) -> int:
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    action, rest = argv[0], argv[1:]
    try:
        if action == "create":
            valid = ["a", "b", "out", "n", "data", "seed", "device", "a_name", "b_name"]
            values, positional = parse_args(
                rest, "study create", [*valid, "show_label"], ["data."]
            )
            if positional:
                raise ValueError(f"unexpected {positional}; use key=value")
            for key in ("a", "b", "out"):
                if key not in values:
                    raise ValueError(f"{key}= is missing; e.g. a=RUN_A b=RUN_B|real out=STUDY_DIR")
            from spadelab.studio.study_create import create

            create(
                values["a"],
                values["b"],
                values["out"],
                n=parse_int(values.get("n", "100"), "n"),
                data=values.get("data"),
                data_overrides=[f"{k}={v}" for k, v in values.items() if k.startswith("data.")],
                seed=parse_int(values.get("seed", "0"), "seed"),
                device=values.get("device", "cpu"),
                a_name=values.get("a_name"),
                b_name=values.get("b_name"),
                show_label=parse_bool(values.get("show_label", "true"), "show_label"),
            )
        elif action == "serve":
            values, positional = parse_args(rest, "study serve", ["host", "port"])
            serve(
                _study_dir(positional, action),
                host=values.get("host", LOCALHOST),
                port=parse_int(values.get("port", "7861"), "port"),
            )
        elif action == "report":
            values, positional = parse_args(rest, "study report", [])
            from spadelab.studio.study_report import report

            report(_study_dir(positional, action))
        elif action == "simulate":
            values, positional = parse_args(rest, "study simulate", ["raters", "prefer_a", "seed"])
            simulate(
                _study_dir(positional, action),
                raters=parse_int(values.get("raters", "5"), "raters"),
                prefer_a=parse_float(values.get("prefer_a", "0.7"), "prefer_a"),
                seed=parse_int(values.get("seed", "0"), "seed"),
            )
        else:
            print(f"spadelab study: unknown action {action!r}\n\n{USAGE}", file=sys.stderr)
            return 2
    except Exception as error:  # noqa: BLE001 - the one error path re-raises bugs
        return command_error(f"study {action}", error)
    return 0
