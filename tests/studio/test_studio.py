"""``spadelab studio``: painting in Chromium reaches the server as class indices; images, styles,
k samples, seeds, side-by-side runs, uploads, downloads and bad requests through the JSON API.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from studio_helpers import live_server

from spadelab.data.synthetic import CLASSES, PALETTE, SKY, WATER
from spadelab.studio import cli as studio_cli
from spadelab.studio.app import create_studio_app, load_studio

SIZE = 32  # scale=smoke


@pytest.fixture(scope="module")
def vae_app(vae_run: Path):
    return create_studio_app(load_studio([str(vae_run)]))


@pytest.fixture(scope="module")
def pair_app(segmap_run: Path, vae_run: Path):
    return create_studio_app(load_studio([str(segmap_run), str(vae_run)]))


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def decode(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def blank(value: int = SKY) -> list[int]:
    return [value] * (SIZE * SIZE)


def wait_generation(page, after: int) -> int:
    page.wait_for_function(f"Number(document.body.dataset.generation || 0) > {after}")
    return int(page.evaluate("Number(document.body.dataset.generation)"))


@pytest.mark.slow
def test_painted_water_stroke_reaches_the_server(page, pair_app) -> None:
    with live_server(pair_app) as url:
        page.goto(url)
        generation = wait_generation(page, 0)
        page.click(".swatch[data-name=sky]")
        page.click("#blank")
        generation = wait_generation(page, generation)
        page.click(".swatch[data-name=water]")
        page.fill("#brush", "4")
        box = page.locator("#canvas").bounding_box()
        scale = box["width"] / SIZE
        # A horizontal stroke along label row 16, from column 6 to column 24.
        y = box["y"] + 16.5 * scale
        page.mouse.move(box["x"] + 6.5 * scale, y)
        page.mouse.down()
        for column in range(7, 25):
            page.mouse.move(box["x"] + (column + 0.5) * scale, y)
        page.mouse.up()
        generation = wait_generation(page, generation)
        label = pair_app.state.last_label
        assert label.shape == (SIZE, SIZE)
        assert (label[14:19, 8:23] == WATER).all()  # under the stroke (brush 4 = radius 2)
        assert (label[:12] == SKY).all() and (label[21:] == SKY).all()
        assert (label[:, :3] == SKY).all() and (label[:, 28:] == SKY).all()
        assert set(np.unique(label)) == {SKY, WATER}
        # Two runs side by side, each image at the generator's size.
        sizes = page.eval_on_selector_all(
            "#outputs img.output", "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])"
        )
        assert sizes == [[SIZE, SIZE], [SIZE, SIZE]]
        assert page.locator(".run h2").all_text_contents() == ["segmap", "vae"]

        # Undo takes the stroke back; fill turns the whole sky region into water.
        page.click("#undo")
        generation = wait_generation(page, generation)
        assert (pair_app.state.last_label == SKY).all()
        page.check("input[name=tool][value=fill]")
        page.mouse.click(box["x"] + 2, box["y"] + 2)
        generation = wait_generation(page, generation)
        assert (pair_app.state.last_label == WATER).all()


@pytest.mark.slow
def test_style_upload_changes_the_vae_output(page, vae_app, tmp_path: Path) -> None:
    styles = []
    for name, color in (("red", (220, 40, 30)), ("green", (30, 200, 60))):
        path = tmp_path / f"{name}.png"
        Image.new("RGB", (48, 48), color).save(path)
        styles.append(path)
    with live_server(vae_app) as url:
        page.goto(url)
        generation = wait_generation(page, 0)
        assert page.is_visible("#vae-controls")
        outputs = []
        for style in styles:
            page.set_input_files("#style", str(style))
            generation = wait_generation(page, generation)
            outputs.append(page.get_attribute("#outputs img.output", "src"))
        page.click("#clear-style")
        generation = wait_generation(page, generation)
        outputs.append(page.get_attribute("#outputs img.output", "src"))
    images = [decode(o) for o in outputs]
    assert all(image.shape == (SIZE, SIZE, 3) for image in images)
    assert np.abs(images[0].astype(int) - images[1]).max() > 0
    assert np.abs(images[0].astype(int) - images[2]).max() > 0


def test_k_samples_and_seed(vae_app) -> None:
    client = TestClient(vae_app)
    body = {"label": blank(), "k": 3, "seed": 7}
    first = client.post("/api/synthesize", json=body).json()["runs"][0]["images"]
    again = client.post("/api/synthesize", json=body).json()["runs"][0]["images"]
    other = client.post("/api/synthesize", json={**body, "seed": 8}).json()["runs"][0]["images"]
    assert len(first) == 3 and first == again  # a fixed seed reproduces the samples
    assert len({*first}) == 3  # k diverse samples
    assert other != first


def test_side_by_side_and_deterministic_runs(pair_app) -> None:
    client = TestClient(pair_app)
    info = client.get("/api/info").json()
    assert [r["name"] for r in info["runs"]] == ["segmap", "vae"]
    assert [r["vae"] for r in info["runs"]] == [False, True]
    assert [c["name"] for c in info["classes"]] == list(CLASSES)
    assert [c["color"] for c in info["classes"]] == PALETTE.tolist()
    assert (info["height"], info["width"], info["validation"]) == (SIZE, SIZE, 4)
    style = data_url(Image.new("RGB", (20, 20), (10, 200, 10)))
    runs = client.post("/api/synthesize", json={"label": blank(), "k": 2, "style": style}).json()
    segmap, vae = runs["runs"]
    assert len(segmap["images"]) == 1 and "deterministic" in segmap["note"]
    assert len(vae["images"]) == 2 and vae["note"] == ""
    assert decode(segmap["images"][0]).shape == (SIZE, SIZE, 3)


def test_validation_maps_uploads_and_downloads(pair_app) -> None:
    client = TestClient(pair_app)
    label = np.array(client.get("/api/validation/0").json()["label"]).reshape(SIZE, SIZE)
    assert len(np.unique(label)) > 1
    assert client.get("/api/validation/4").status_code == 404
    # Download: an indexed PNG whose indices are the map and whose colours are the palette.
    response = client.post("/api/label.png", json={"label": label.reshape(-1).tolist()})
    png = Image.open(io.BytesIO(response.content))
    assert png.mode == "P"
    assert (np.asarray(png) == label).all()
    assert (np.asarray(png.convert("RGB")) == PALETTE[label]).all()
    # Upload: that PNG, a mode-L map of another size, and a map coloured with the palette.
    uploads = [
        response.content,
        _png_bytes(Image.fromarray(np.kron(label, np.ones((2, 2))).astype(np.uint8), "L")),
        _png_bytes(Image.fromarray(PALETTE[label])),
    ]
    for upload in uploads:
        got = client.post("/api/label", json={"png": base64.b64encode(upload).decode()})
        assert (np.array(got.json()["label"]).reshape(SIZE, SIZE) == label).all()


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("route", "body", "message"),
    [
        ("/api/synthesize", {"label": [0] * 10}, "expected 32x32"),
        ("/api/synthesize", {"label": blank(10)}, "0..9"),
        ("/api/synthesize", {"label": blank(), "k": 0}, "greater than or equal"),
        ("/api/synthesize", {"label": blank(), "style": "data:image/png;base64,xx"}, "style"),
        ("/api/label", {"png": base64.b64encode(b"not a png").decode()}, "not a readable"),
        ("/api/label", {"png": data_url(Image.new("L", (8, 8), 12))}, "values up to 12"),
        ("/api/label", {"png": data_url(Image.new("RGB", (8, 8), (1, 2, 3)))}, "palette"),
        ("/api/label.png", {"label": ["sky"] * SIZE * SIZE}, "int"),
    ],
)
def test_bad_requests_get_422(pair_app, route: str, body: dict, message: str) -> None:
    response = TestClient(pair_app).post(route, json=body)
    assert response.status_code == 422
    assert message in response.text


def test_cli_errors(capsys, tmp_path: Path) -> None:
    assert studio_cli.cli(["port=1"]) == 2
    assert "ckpt=RUN_DIR" in capsys.readouterr().err
    assert studio_cli.cli(["ckpt=x", "colour=1"]) == 2
    assert "unknown setting colour=" in capsys.readouterr().err
    assert studio_cli.cli([f"ckpt={tmp_path}"]) == 2
    assert "without checkpoints/last.ckpt" in capsys.readouterr().err


def test_cli_serves_on_localhost_unless_told(segmap_run: Path, monkeypatch, capsys) -> None:
    import uvicorn

    hosts = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **_: hosts.append((host, port)))
    assert studio_cli.cli([f"ckpt=[{segmap_run},{segmap_run}]"]) == 0
    assert studio_cli.cli([f"ckpt={segmap_run}", "host=0.0.0.0", "port=9001", "device=cpu"]) == 0
    assert hosts == [("127.0.0.1", 7860), ("0.0.0.0", 9001)]
    assert "ANY machine" in capsys.readouterr().out
