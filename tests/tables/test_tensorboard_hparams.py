"""TensorBoard's HParams tab on a smoke sweep, in headless Chromium: every run with its mIoU.

Browser: Debian's ``chromium`` driven by Playwright through ``executable_path`` (as in
tests/studio; Playwright never downloads a browser). ``SPADELAB_SCREENSHOT_DIR=docs/screenshots``
also writes the README's screenshot there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from smoke import SWEEP_ROW
from spadelab.tables import sweep

sys.path.insert(0, str(Path(__file__).parents[1] / "studio"))
from studio_helpers import BROWSER_TIMEOUT_MS, free_port  # noqa: E402

ROWS = ("segmap_input", "kernel1")  # two rows of Table 4 that differ in one axis (kernel size)
TINY = [*SWEEP_ROW, "scale.judge_steps=5"]
# Every text of the page, shadow roots included (TensorBoard's dashboards are web components).
DEEP_TEXT = """() => {
  const parts = [];
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) { parts.push(node.textContent); return; }
    if (["STYLE", "SCRIPT", "NOSCRIPT"].includes(node.nodeName)) return;
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) walk(child);
  };
  walk(document.body);
  return parts.join(" ").replace(/\\s+/g, " ");
}"""


@contextmanager
def tensorboard(logdir: Path) -> Iterator[str]:
    """``tensorboard --logdir`` on 127.0.0.1:<free port>; its URL once it answers."""
    port = free_port()
    command = [sys.executable, "-m", "tensorboard.main", f"--logdir={logdir}"]
    command += ["--host=127.0.0.1", f"--port={port}", "--reload_interval=2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/data/plugins_listing", timeout=5) as answer:
                    if "hparams" in json.loads(answer.read()):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"tensorboard did not start on {url}:\n{output[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.slow
def test_hparams_tab_lists_every_run_of_a_sweep_with_its_miou(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser, capsys
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    sweep_dir = tmp_path / "table4"
    args = ["table4", f"rows=[{','.join(ROWS)}]", "seeds=[0]", "logger=tensorboard"]
    args += ["callbacks=with_eval", f"callbacks.evaluation.cache_dir={tmp_path / 'cache'}"]
    assert sweep.cli([*args, f"sweep_dir={sweep_dir}", *TINY]) == 0
    capsys.readouterr()
    miou = {
        row: json.loads((sweep_dir / f"{row}-seed0" / "metrics.json").read_text())["generator"][
            "miou"
        ]
        for row in ROWS
    }

    with tensorboard(sweep_dir) as url:
        context = browser.new_context(viewport={"width": 1600, "height": 440})
        context.set_default_timeout(BROWSER_TIMEOUT_MS)
        page = context.new_page()
        outside: list[str] = []
        page.on(
            "request",
            lambda r: None if r.url.startswith((url, "data:", "blob:")) else outside.append(r.url),
        )
        page.goto(f"{url}/#hparams")
        # The table view: one row per run (session), its hparams, then its metrics.
        for row in ROWS:
            page.get_by_text(f"{row}-seed0/tensorboard/evaluation").first.wait_for()
        page.get_by_text("eval/miou").first.wait_for()
        # Columns the same for every run of this sweep, hidden so that the metrics fit.
        for hparam in ("data", "encoder", "model"):
            page.locator("paper-checkbox.hparam-checkbox").filter(has_text=hparam).first.click()
        page.get_by_text("eval/miou").first.wait_for()
        text = page.evaluate(DEEP_TEXT)
        shot = tmp_path / "tensorboard_hparams.png"
        page.screenshot(path=str(shot))
        if os.environ.get("SPADELAB_SCREENSHOT_DIR"):
            target = Path(os.environ["SPADELAB_SCREENSHOT_DIR"]) / "tensorboard_hparams.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, target)
        context.close()
    assert outside == [], f"TensorBoard's page fetched from outside localhost: {outside}"
    table = table_view(text, [f"{row}-seed0/tensorboard/evaluation" for row in ROWS])
    for row in ROWS:
        cells = table[f"{row}-seed0/tensorboard/evaluation"]
        # The run's mIoU as in its metrics.json (the final evaluation), and the axis it differs in.
        assert float(cells["eval/miou"]) == pytest.approx(miou[row], rel=1e-4, abs=1e-4)
        assert cells["row"] == row and "data" not in cells
    assert float(table[f"{ROWS[1]}-seed0/tensorboard/evaluation"]["modulation_kernel_size"]) == 1
    assert "eval_ema/miou" in text  # in the metrics list (the table shows five by default)


def table_view(text: str, trials: list[str]) -> dict[str, dict[str, str]]:
    """{trial: {column: cell}} of the HParams table view in the page's text (its header, then
    one line per trial; no value here has a space)."""
    start = text.index("Trial ID Show Metrics") + len("Trial ID Show Metrics")
    first = min(text.index(trial, start) for trial in trials)
    header = text[start:first].split()
    table = {}
    for trial in trials:
        cells = text[text.index(trial, start) + len(trial) :].split()[: len(header)]
        table[trial] = dict(zip(header, cells))
    return table
