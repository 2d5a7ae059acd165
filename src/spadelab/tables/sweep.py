"""``spadelab sweep``: a results table is one Hydra multirun over its rows (x seeds).

    spadelab sweep experiments/table4.yaml [scale=smoke] [data=synthetic] [logger=csv]
        [launcher=basic|joblib|submitit_local|slurm] [seeds=[0,1,2]] [rows=[name,...]]
        [sweep_dir=PATH] [dry_run=true] [eval.*=...] [any train override...]

1. ``experiments/<table>.yaml`` lists the rows; each row is a list of overrides of
   ``conf/train.yaml`` (plus the file's ``base_overrides``).
2. Each row becomes a Hydra config ``<sweep_dir>/.rows/row/<name>.yaml`` (``@package _global_``,
   ``override /group: choice`` in its defaults list, plain values for keys), regenerated on every
   call; ``<sweep_dir>/.rows`` goes on Hydra's search path.
3. One multirun of ``python -m spadelab.tables.sweep`` (the job entry point at the end of this
   file) over ``+row=<names> seed=<seeds>`` with the chosen ``hydra/launcher``
   (``conf/hydra/launcher/``). Run dirs are ``<sweep_dir>/<row>-seed<k>``; ``sweep_dir``
   defaults to ``multirun/<table>/<scale>-<data>``.
4. A job skips a run dir with a complete metrics.json; otherwise it trains with
   ``ckpt_path=auto`` (resuming last.ckpt) and evaluates. A failing job writes FAILED.json and
   the sweep goes on. Re-running the same command therefore finishes an interrupted sweep.
5. The table is printed at the end (``spadelab report`` prints it again).
6. One sweep per sweep dir at a time: a second one is refused while the first holds
   ``<sweep_dir>/.sweep.lock`` (``rundirs.sweep_lock``; the multirun inherits it).
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import hydra
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from spadelab.commands.args import parse_value, split_overrides
from spadelab.config import CONF_DIR, compose_config, override_value
from spadelab.runtime import (
    ConfigError,
    check_unknown_keys,
    command_error,
    describe_error,
    run_command,
    validate_targets,
    write_json,
)
from spadelab.tables import report
from spadelab.tables.rundirs import (
    choices,
    default_sweep_dir,
    read_metrics,
    run_dir_name,
    run_state,
    sweep_lock,
)
from spadelab.tables.spec import Experiment, Row, load_experiment

log = logging.getLogger("spadelab.sweep")

# launcher= of `spadelab sweep` -> hydra/launcher choice (conf/hydra/launcher/ and the plugins')
LAUNCHERS = {
    "basic": "basic",
    "joblib": "local_joblib",
    "submitit_local": "local_submitit",
    "slurm": "slurm",
}
OPTIONS = {"launcher", "seeds", "rows", "sweep_dir", "dry_run", "strict", "wandb"}
SWEEP_OWNED = {"hydra.sweep.dir", "hydra.sweep.subdir", "hydra/launcher", "hydra.searchpath"}


# ---- row configs --------------------------------------------------------------------------
def is_group(key: str) -> bool:
    return (CONF_DIR / key).is_dir()


def row_config(row: Row, experiment: Experiment, context: dict[str, Any]) -> dict[str, Any]:
    """The Hydra config of one row: its group choices as defaults-list overrides, keys as values.

    ``context``: ``group``, ``scale``, ``data``, ``sweep_dir``, ``eval_overrides``.
    """
    assert row.overrides is not None, row
    parser = OverridesParser.create()
    groups: dict[str, tuple[str, bool]] = {}
    values = OmegaConf.create({})
    tags = [f"table={experiment.name}", f"row={row.name}"]
    for text in (*experiment.base_overrides, *row.overrides):
        where = f"{experiment.path}: row {row.name}: override {text!r}"
        try:
            override = parser.parse_override(text)
        except Exception as error:  # noqa: BLE001
            raise ConfigError(f"{where} is not a Hydra override: {error}") from error
        key = override.key_or_group
        if override.is_delete() or override.is_sweep_override() or override.package:
            raise ConfigError(
                f"{where}: rows take plain `key=value` / `group=choice` overrides (no ~, no "
                "sweeps, no @package); make a sweep a list of rows or seeds instead"
            )
        if key.startswith("hydra.") or key in ("seed", "run_dir"):
            raise ConfigError(
                f"{where}: {key} is set by the sweep; pass hydra.* settings to `spadelab sweep` "
                "and seeds in the experiment's `seeds`"
            )
        value = override.value()
        if is_group(key):
            if not isinstance(value, str):
                raise ConfigError(f"{where}: group {key} needs one choice name")
            groups[key] = (value, override.is_add())
        else:
            OmegaConf.update(values, key, value, merge=False, force_add=True)
        tag = text.lstrip("+")[:64]
        if tag not in tags:
            tags.append(tag)
    tags += [f"scale={context['scale']}", f"data={context['data']}"]
    defaults: list[Any] = [
        {f"{'' if added else 'override '}/{group}": choice}
        for group, (choice, added) in groups.items()
    ]
    row_values = OmegaConf.to_container(values)
    assert isinstance(row_values, dict)
    for reserved in ("ckpt_path", "experiment", "sweep", "defaults"):
        if reserved in row_values:
            raise ConfigError(
                f"{experiment.path}: row {row.name} sets {reserved}, which the sweep sets"
            )
    config: dict[str, Any] = {"defaults": [*defaults, "_self_"], **row_values}
    config["ckpt_path"] = "auto"
    config["experiment"] = {
        "table": experiment.name,
        "row": row.name,
        "group": context["group"],
        "tags": tags,
        "run_name": f"{row.name}-seed${{seed}}",
    }
    config["sweep"] = {
        "dir": str(context["sweep_dir"]),
        "eval_overrides": list(context["eval_overrides"]),
    }
    return config


def write_row_configs(
    experiment: Experiment, rows: Sequence[Row], rows_root: Path, context: dict[str, Any]
) -> dict[str, str]:
    """Write ``rows_root/row/<name>.yaml`` for every row; returns compose errors by row name."""
    folder = rows_root / "row"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.yaml"):
        stale.unlink()
    errors = {}
    for row in rows:
        try:
            config = row_config(row, experiment, context)
        except ConfigError as error:
            errors[row.name] = str(error)
            continue
        header = (
            "# @package _global_\n"
            f"# Generated by `spadelab sweep` from {experiment.path} (row {row.name}); "
            "rewritten on every run.\n"
        )
        text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=99)
        (folder / f"{row.name}.yaml").write_text(header + text)
    return errors


# ---- planning -----------------------------------------------------------------------------
@dataclass
class Plan:
    experiment: Experiment
    sweep_dir: Path
    scale: str
    data: str
    logger: str
    launcher: str
    seeds: tuple[int, ...]
    rows: tuple[Row, ...]  # the rows of this invocation that run
    overrides: list[str]  # passed to every job on the command line
    eval_overrides: list[str]
    jobs: dict[tuple[str, int], str] = field(default_factory=dict)  # (row, seed) -> state
    errors: dict[str, str] = field(default_factory=dict)  # row -> why it cannot run
    wandb_project: str = "spadelab"
    lock: IO[str] | None = None  # the sweep dir's lock file while this process holds it

    @property
    def group(self) -> str:
        return f"{self.experiment.name}-{self.scale}-{self.data}"

    @property
    def rows_root(self) -> Path:
        return self.sweep_dir / ".rows"

    def to_launch(self) -> tuple[list[str], list[int]]:
        todo = [key for key, state in self.jobs.items() if state == "todo"]
        names = [row.name for row in self.rows if any(r == row.name for r, _ in todo)]
        seeds = [seed for seed in self.seeds if any(s == seed for _, s in todo)]
        return names, seeds

    def command(self) -> list[str]:
        names, seeds = self.to_launch()
        launcher = [f"hydra/launcher={LAUNCHERS[self.launcher]}"]
        return [
            sys.executable,
            "-m",
            "spadelab.tables.sweep",
            "--multirun",
            f"hydra.searchpath=[{override_value(f'file://{self.rows_root}', 'sweep_dir')}]",
            f"hydra.sweep.dir={override_value(str(self.sweep_dir), 'sweep_dir')}",
            "hydra.sweep.subdir=${experiment.row}-seed${seed}",
            *launcher,
            f"+row={','.join(names)}",
            f"seed={','.join(str(s) for s in seeds)}",
            *self.overrides,
        ]


def parse_arguments(argv: Sequence[str]) -> tuple[str, dict[str, Any], list[str], list[str]]:
    """``(experiment, options, train overrides, eval overrides)`` from the command line."""
    if not argv or argv[0].startswith("-") or "=" in argv[0]:
        raise ConfigError(
            "the first argument is the experiment file, e.g. `spadelab sweep "
            "experiments/table4.yaml scale=smoke`"
        )
    values, hydra_overrides = split_overrides(argv[1:], "sweep", sorted(OPTIONS))
    options = {key: parse_value(value) for key, value in values.items()}
    overrides: list[str] = []
    eval_overrides: list[str] = []
    for arg in hydra_overrides:
        key = arg.partition("=")[0]
        if key == "seed":
            raise ConfigError("seeds are swept by the sweep: pass seeds=[0,1,2], not seed=")
        elif key.lstrip("+~") in SWEEP_OWNED:
            raise ConfigError(
                f"{key} is set by the sweep; use sweep_dir=PATH for where runs go and "
                f"launcher={'|'.join(LAUNCHERS)} (then hydra.launcher.KEY=VALUE) for how"
            )
        elif key.startswith("eval."):
            eval_overrides.append(arg)
        else:
            overrides.append(arg)
    return argv[0], options, overrides, eval_overrides


def plan(
    experiment: Experiment,
    options: dict[str, Any],
    overrides: list[str],
    eval_overrides: list[str],
    hold: ExitStack | None = None,
) -> Plan:
    """Resolve names and dirs, write the row configs and compose every row to check it.

    ``hold``: take the sweep dir's lock into this stack before writing anything there (the row
    configs a running multirun composes from included).
    """
    unknown = set(options) - OPTIONS
    if unknown:
        raise ConfigError(f"unknown sweep option(s) {sorted(unknown)}")
    launcher = str(options.get("launcher") or "basic")
    if launcher not in LAUNCHERS:
        raise ConfigError(f"launcher={launcher} is not one of: {', '.join(LAUNCHERS)}")
    seeds = options.get("seeds", list(experiment.seeds))
    seeds = [seeds] if isinstance(seeds, int) else seeds
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"seeds={seeds!r}: pass a list of integers, e.g. seeds=[0,1,2]")
    wanted = options.get("rows")
    rows = list(experiment.run_rows)
    if wanted is not None:
        wanted = [wanted] if isinstance(wanted, str) else [str(name) for name in wanted]
        # Unknown names fail here, naming the valid ones; a same_as row runs as its source.
        wanted = [experiment.row(name).same_as or name for name in wanted]
        rows = [row for row in rows if row.name in wanted]
    if not rows:
        raise ConfigError(f"{experiment.path}: no row to run (rows={wanted})")
    try:
        picked = choices([f"hydra/launcher={LAUNCHERS[launcher]}", *overrides])
    except Exception as error:  # noqa: BLE001
        raise ConfigError(
            f"the sweep's overrides do not compose: {describe_error(error)}"
        ) from error
    scale, data, logger = picked["scale"], picked["data"], picked.get("logger", "none")
    sweep_dir = options.get("sweep_dir")
    sweep_dir = (
        Path(str(sweep_dir)).expanduser().resolve()
        if sweep_dir
        else default_sweep_dir(experiment, scale, data)
    )
    result = Plan(
        experiment=experiment,
        sweep_dir=sweep_dir,
        scale=scale,
        data=data,
        logger=logger,
        launcher=launcher,
        seeds=tuple(seeds),
        rows=tuple(rows),
        overrides=overrides,
        eval_overrides=eval_overrides,
    )
    context = {
        "group": result.group,
        "scale": scale,
        "data": data,
        "sweep_dir": sweep_dir,
        "eval_overrides": eval_overrides,
    }
    if hold is not None:
        result.lock = hold.enter_context(sweep_lock(sweep_dir))
    result.errors = write_row_configs(experiment, rows, result.rows_root, context)
    for row in rows:
        if row.name in result.errors:
            result.jobs.update({(row.name, seed): "invalid" for seed in seeds})
            continue
        try:
            cfg = compose_config(
                "train",
                [
                    f"hydra.searchpath=[{override_value(f'file://{result.rows_root}', 'sweep_dir')}]",
                    f"+row={row.name}",
                    f"seed={seeds[0]}",
                    f"run_dir={override_value(str(sweep_dir / run_dir_name(row.name, seeds[0])), 'sweep_dir')}",
                    f"hydra/launcher={LAUNCHERS[launcher]}",
                    *overrides,
                ],
                with_hydra=True,
            )
            plain = job_config(cfg)
            validate_targets(plain)
            # A row's plain keys enter through a config file, which Hydra's struct mode lets
            # add keys: a typo (loss.lambda_fet=0) would run with the default and report "ok".
            check_unknown_keys(plain)
        except Exception as error:  # noqa: BLE001 - reported per row, the others still run
            result.errors[row.name] = describe_error(error)
            result.jobs.update({(row.name, seed): "invalid" for seed in seeds})
            continue
        check_launch(cfg, launcher)  # the same for every row: fails the whole sweep
        result.wandb_project = str(
            (plain.get("logger") or {}).get("wandb", {}).get("project", result.wandb_project)
        )
        for seed in seeds:
            run_dir = sweep_dir / run_dir_name(row.name, seed)
            state, message = run_state(run_dir, {**plain, "seed": seed})
            result.jobs[row.name, seed] = state
            if state == "stale":
                result.errors[row.name] = message
    return result


def job_config(cfg: DictConfig) -> dict[str, Any]:
    """A composed config (with its ``hydra`` node) as the plain, resolved dict a job sees."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(plain, dict)
    plain.pop("hydra", None)
    resolved = OmegaConf.to_container(OmegaConf.create(plain), resolve=True)
    assert isinstance(resolved, dict)
    return resolved


def check_launch(cfg: DictConfig, launcher: str) -> None:
    """Refuse combinations that cannot work, before any job starts."""
    strategy = str(cfg.trainer.get("strategy", "auto"))
    devices = cfg.trainer.get("devices", 1)
    processes = devices * int(cfg.trainer.get("num_nodes", 1)) if isinstance(devices, int) else 2
    spawned = "spawn" in strategy or "fork" in strategy
    if launcher != "slurm" and strategy.startswith("ddp") and not spawned and processes > 1:
        raise ConfigError(
            f"trainer.strategy={strategy} starts its processes by re-running the command, which "
            "inside a Hydra multirun re-runs the whole sweep; use launcher=slurm (one task per "
            "GPU) or trainer.strategy=ddp_spawn_find_unused_parameters_true for a local sweep"
        )
    if launcher == "slurm":
        if not isinstance(devices, int) or devices < 1:
            raise ConfigError(
                f"trainer.devices={devices}: launcher=slurm needs a number of GPUs per node "
                "(it becomes gpus_per_node and tasks_per_node)"
            )
        try:
            queue = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
        except Exception as error:  # noqa: BLE001
            raise ConfigError(f"hydra.launcher does not resolve: {error}") from error
        assert isinstance(queue, dict)
        if str(cfg.trainer.get("accelerator")) == "cpu":
            # A CPU partition: one process per trainer.devices, and no GPU request, which a
            # node without GPUs could never satisfy.
            if queue["gpus_per_node"] or queue["tasks_per_node"] != devices:
                raise ConfigError(
                    f"hydra.launcher.gpus_per_node={queue['gpus_per_node']} and tasks_per_node="
                    f"{queue['tasks_per_node']} with trainer.accelerator=cpu: request no GPUs "
                    f"and {devices} task(s) (trainer.devices); leave the launcher's fields alone"
                )
        elif not queue["tasks_per_node"] == queue["gpus_per_node"] == devices:
            raise ConfigError(
                f"hydra.launcher.tasks_per_node={queue['tasks_per_node']} and gpus_per_node="
                f"{queue['gpus_per_node']} must both equal trainer.devices={devices} (one process "
                "per GPU); set trainer.devices instead of the launcher's fields"
            )


def record_states(plan_: Plan) -> None:
    """Runs that cannot start get their FAILED.json now (they are not launched); complete runs
    lose one left by an earlier attempt (e.g. a config change that was since undone)."""
    for (row, seed), state in plan_.jobs.items():
        failed = plan_.sweep_dir / run_dir_name(row, seed) / "FAILED.json"
        if state in ("invalid", "stale"):
            write_json(failed, {"error": plan_.errors[row], "traceback": None, "stage": "plan"})
        elif state == "complete":
            failed.unlink(missing_ok=True)


def describe_plan(plan_: Plan) -> str:
    counts: dict[str, int] = {}
    for state in plan_.jobs.values():
        counts[state] = counts.get(state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    lines = [
        f"sweep {plan_.experiment.name}: {len(plan_.rows)} rows x seeds {list(plan_.seeds)} "
        f"at scale={plan_.scale} data={plan_.data} logger={plan_.logger} "
        f"launcher={plan_.launcher} ({summary})",
        f"sweep dir: {plan_.sweep_dir}",
    ]
    for row, message in plan_.errors.items():
        lines.append(f"  row {row} will not run: {message}")
    return "\n".join(lines)


# ---- the command --------------------------------------------------------------------------
USAGE = """usage: spadelab sweep EXPERIMENT [scale=smoke] [data=synthetic] [logger=csv]
           [launcher=basic|joblib|submitit_local|slurm] [seeds=[0,1,2]] [rows=[a,b]]
           [sweep_dir=PATH] [dry_run=true] [strict=true] [wandb=true] [eval.KEY=VALUE...]
           [OVERRIDE...]

EXPERIMENT is experiments/<table>.yaml or its name (table4). Runs every row x seed as one Hydra
multirun into multirun/<table>/<scale>-<data>/<row>-seed<k>, skipping complete runs and resuming
interrupted ones, then prints the report. eval.* go to `spadelab evaluate`, everything else to
every run's `spadelab train`. strict=true exits 1 when a run failed. logger=wandb groups the runs
in wandb and logs the report as a wandb.Table (wandb=true: only the report)."""


def cli(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    with ExitStack() as hold:
        try:
            spec, options, overrides, eval_overrides = parse_arguments(argv)
            experiment = load_experiment(spec)
            plan_ = plan(experiment, options, overrides, eval_overrides, hold)
        except Exception as error:  # noqa: BLE001 - the one error path re-raises bugs
            return command_error("sweep", error)
        return launch(plan_, options)


def launch(plan_: Plan, options: dict[str, Any]) -> int:
    """Run the planned multirun (the caller holds the sweep dir's lock), then print the table."""
    print(describe_plan(plan_), flush=True)
    if options.get("dry_run"):
        names, _ = plan_.to_launch()
        print(" ".join(plan_.command()) if names else "nothing to launch")
        return 0
    record_states(plan_)
    names, _ = plan_.to_launch()
    code = 0
    if names:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # The multirun inherits the lock: if this process is killed, its jobs still hold it.
        fds = () if plan_.lock is None else (plan_.lock.fileno(),)
        code = subprocess.run(plan_.command(), env=env, check=False, pass_fds=fds).returncode
        if code != 0:
            print(f"spadelab sweep: the multirun exited with code {code}", file=sys.stderr)
    else:
        print("every run of this sweep is complete or cannot run; nothing to launch")
    experiment = plan_.experiment
    results = report.gather(experiment, plan_.sweep_dir)
    print()
    try:
        print(
            report.publish(
                experiment,
                results,
                plan_.sweep_dir,
                scale=plan_.scale,
                data=plan_.data,
                use_wandb=plan_.logger == "wandb" or bool(options.get("wandb")),
                wandb_project=plan_.wandb_project,
            )
        )
    except ConfigError as error:
        print(f"spadelab sweep: report not written: {error}", file=sys.stderr)
        return code or 2
    failed = sum(1 for r in results for run in r.runs if run.status == "failed")
    if code == 0 and failed and options.get("strict"):
        return 1
    return code


def main() -> int:
    return cli(sys.argv[1:])


# ---- one job of the multirun ---------------------------------------------------------------
def run_row(cfg: DictConfig) -> dict[str, Any] | None:
    """Train (resuming) and evaluate one row x seed, unless its run dir is complete."""
    run_dir = Path(str(cfg.run_dir))
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    state, message = run_state(run_dir, plain)
    if state == "stale":
        raise ConfigError(message)
    if state == "complete":
        (run_dir / "FAILED.json").unlink(missing_ok=True)
        log.info("%s is complete (metrics.json); skipped", run_dir)
        return read_metrics(run_dir)
    from spadelab.commands.train import train

    summary = train(cfg)
    if not summary.get("is_global_zero", True):
        return summary  # other DDP ranks: rank 0 evaluates
    from spadelab.commands.evaluate import evaluate

    sweep = cfg.get("sweep") or {}
    cache_dir = Path(str(sweep.get("dir") or run_dir.parent)) / ".cache"
    eval_cfg = compose_evaluate(
        [
            f"ckpt={override_value(str(run_dir), 'run_dir')}",
            f"eval.judge.steps={int(cfg.scale.judge_steps)}",
            f"eval.cache_dir={override_value(str(cache_dir), 'sweep.dir')}",
            *(["device=cuda"] if _cuda() else []),
            *list(sweep.get("eval_overrides") or []),
        ]
    )
    with judge_lock(cache_dir):
        return evaluate(eval_cfg)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def compose_evaluate(overrides: list[str]) -> DictConfig:
    """``conf/evaluate.yaml`` with overrides, from inside a running Hydra app or outside one."""
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return hydra.compose(config_name="evaluate", overrides=overrides)
    from spadelab.config import compose_config

    return compose_config("evaluate", overrides)


@contextmanager
def judge_lock(cache_dir: Path) -> Iterator[None]:
    """Parallel jobs wait while the first one trains the sweep's judge, then load it."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    if any(cache_dir.glob("judge-*.pt")):
        yield
        return
    with (cache_dir / "judge.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def job_main(cfg: DictConfig) -> Any:
    return run_command("sweep", run_row, cfg)


if __name__ == "__main__":
    # Call the copy imported under its module name: launchers pickle the task function, and a
    # function of ``spadelab.tables.sweep`` pickles by reference where one of ``__main__``
    # would not.
    from spadelab.tables.sweep import job_main as importable_job_main

    importable_job_main()
