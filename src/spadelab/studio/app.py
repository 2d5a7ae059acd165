"""``spadelab studio``: paint a label map in the browser, see each run's image for it.

The page (static/studio.html + studio.js) keeps the label map as class indices and sends the
whole map with every request, so the server is stateless apart from the loaded runs. Routes:
- ``GET /api/info``: canvas size, the classes (names, colours), the runs, validation maps.
- ``GET /api/validation/{i}``: validation label map ``i`` as a flat list of class indices.
- ``POST /api/label``: an uploaded label PNG (data URL) -> class indices at canvas size.
- ``POST /api/synthesize``: ``{label, seed, k, style}`` -> every run's images (PNG data URLs).
- ``POST /api/label.png``: class indices -> the label map as an indexed PNG (for download).
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from spadelab.builders import image_size
from spadelab.checkpoints import load_checkpoint
from spadelab.data.labels import default_palette
from spadelab.data.transforms import image_to_tensor, map_to_tensor, tensor_to_uint8
from spadelab.module import SemanticSynthesis
from spadelab.nets.generators import draws_noise

STATIC_DIR = Path(__file__).parent / "static"
MAX_SAMPLES = 8
NUM_VALIDATION_MAPS = 16


@dataclass
class StudioRun:
    name: str
    module: SemanticSynthesis
    size: tuple[int, int]

    @property
    def has_encoder(self) -> bool:
        return self.module.encoder is not None

    @property
    def uses_noise(self) -> bool:
        return draws_noise(self.module.generator)


@dataclass
class Studio:
    """Everything the app serves: the runs, the label layout of the first run, its data."""

    runs: list[StudioRun]
    class_names: list[str]
    palette: np.ndarray
    validation: list[np.ndarray] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    device: str = "cpu"

    @property
    def size(self) -> tuple[int, int]:
        return self.runs[0].size

    @property
    def num_label_values(self) -> int:
        return self.runs[0].module.spec.num_label_values


def _run_names(paths: Sequence[str]) -> list[str]:
    names = [Path(p).name or str(p) for p in paths]
    if len(set(names)) < len(names):
        # Distinct names for side-by-side columns: fall back to the full path.
        names = [str(p) for p in paths]
    return names


def load_studio(ckpts: Sequence[str], device: str = "cpu") -> Studio:
    """Load the runs; palette, names and validation maps come from the first run's data."""
    from hydra.utils import instantiate

    if not ckpts:
        raise ValueError("ckpt= is missing; pass a run dir, a .ckpt, or a list ckpt=[A,B]")
    runs = [
        StudioRun(
            name,
            (module := load_checkpoint(p, map_location=device)),
            image_size(module.cfg["data"]),
        )
        for name, p in zip(_run_names(ckpts), ckpts)
    ]
    spec = runs[0].module.spec
    for run, path in zip(runs[1:], ckpts[1:]):
        if run.module.spec.num_label_values != spec.num_label_values:
            raise ValueError(
                f"ckpt={path} has {run.module.spec.num_label_values} label values but "
                f"ckpt={ckpts[0]} has {spec.num_label_values}; side by side needs runs "
                "trained on the same classes"
            )
    notes: list[str] = []
    names: list[str] | None = None
    palette = None
    validation: list[np.ndarray] = []
    try:
        datamodule = instantiate(runs[0].module.cfg["data"])
        datamodule.setup("validate")
        names, palette = datamodule.class_names, datamodule.palette
        height, width = runs[0].size
        for i in range(min(NUM_VALIDATION_MAPS, len(datamodule.val_set))):
            label = datamodule.val_set[i]["label"].float()[None]
            label = F.interpolate(label, size=(height, width), mode="nearest")[0, 0]
            validation.append(label.long().numpy())
    except Exception as error:  # noqa: BLE001 - the studio works without the dataset
        notes.append(f"validation maps unavailable ({type(error).__name__}: {error})")
    if spec.use_instance:
        notes.append("instance edges: none (the studio paints classes only)")
    n = spec.num_label_values
    if names is None or len(names) < n:
        names = [*(names or []), *[f"class {i}" for i in range(len(names or []), n)]]
    if palette is None or len(palette) < n:
        palette = default_palette(n)
    studio = Studio(
        runs, list(names[:n]), np.asarray(palette[:n], dtype=np.uint8), validation, notes, device
    )
    if validation:
        # As in `spadelab synthesize`: EMA weights get norm statistics of their own, here from
        # the validation maps (one drawn map would be a poor batch to estimate them from).
        for run in runs:
            batch = label_batch(studio, validation[:NUM_VALIDATION_MAPS], run.size)
            run.module.recalibrate_ema_norms([batch])
    return studio


def label_batch(studio: Studio, labels: Sequence[np.ndarray], size: tuple[int, int]) -> dict:
    label = torch.from_numpy(np.stack(labels)).long()[:, None]
    if tuple(label.shape[-2:]) != tuple(size):
        label = F.interpolate(label.float(), size=size, mode="nearest").long()
    label = label.to(studio.device)
    return {"label": label, "instance": torch.zeros_like(label)}


def decode_data_url(data: str, what: str) -> Image.Image:
    """``data:image/png;base64,...`` (or bare base64) -> an opened PIL image."""
    payload = data.split(",", 1)[1] if data.startswith("data:") else data
    try:
        image = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
        image.load()
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as error:
        raise HTTPException(422, f"{what} is not a readable image: {error}") from error
    return image


def png_data_url(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def label_from_image(studio: Studio, image: Image.Image) -> np.ndarray:
    """An uploaded label map: class indices (mode L/P/I), or colours of the run's palette."""
    height, width = studio.size
    if image.mode in ("L", "P", "I", "I;16"):
        label = map_to_tensor(image.resize((width, height), Image.Resampling.NEAREST))[0]
        label = label.numpy()
    elif image.mode in ("RGB", "RGBA"):
        rgb = np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.NEAREST))
        codes = rgb.astype(np.int64) @ np.array([65536, 256, 1])
        lookup = {
            int(c): i for i, c in enumerate(studio.palette.astype(np.int64) @ [65536, 256, 1])
        }
        label = np.vectorize(lambda c: lookup.get(int(c), -1))(codes)
        if (label < 0).any():
            raise HTTPException(
                422,
                "the uploaded colour image has colours outside the run's palette; upload a "
                "label PNG of class indices (mode L/P) or one coloured with this palette",
            )
    else:
        raise HTTPException(422, f"label image mode {image.mode} is not a label map (L/P/I/RGB)")
    if label.max(initial=0) >= studio.num_label_values or label.min(initial=0) < 0:
        raise HTTPException(
            422,
            f"the uploaded label map holds values up to {int(label.max())}; this run has "
            f"{studio.num_label_values} classes (0..{studio.num_label_values - 1})",
        )
    return label.astype(np.int64)


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: list[StrictInt]


class UploadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    png: StrictStr


class SynthesizeIn(LabelIn):
    seed: StrictInt = 0
    k: StrictInt = Field(1, ge=1, le=MAX_SAMPLES)
    style: StrictStr | None = None


def create_studio_app(studio: Studio) -> FastAPI:
    app = FastAPI(title="spadelab studio", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.studio = studio
    # The last label map a synthesize request carried: the tests read it back.
    app.state.last_label = None
    lock = threading.Lock()

    def checked_label(values: list[int]) -> np.ndarray:
        height, width = studio.size
        if len(values) != height * width:
            raise HTTPException(422, f"label has {len(values)} values; expected {height}x{width}")
        label = np.asarray(values, dtype=np.int64).reshape(height, width)
        if label.min() < 0 or label.max() >= studio.num_label_values:
            raise HTTPException(422, f"label values must be in 0..{studio.num_label_values - 1}")
        return label

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "studio.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/info")
    def info() -> dict[str, object]:
        height, width = studio.size
        return {
            "height": height,
            "width": width,
            "classes": [
                {"index": i, "name": name, "color": [int(c) for c in studio.palette[i]]}
                for i, name in enumerate(studio.class_names)
            ],
            "runs": [
                {
                    "name": run.name,
                    "vae": run.has_encoder,
                    "diverse": run.uses_noise,
                    "size": list(run.size),
                }
                for run in studio.runs
            ],
            "validation": len(studio.validation),
            "notes": studio.notes,
            "max_samples": MAX_SAMPLES,
        }

    @app.get("/api/validation/{index}")
    def validation(index: int) -> dict[str, object]:
        if not 0 <= index < len(studio.validation):
            raise HTTPException(404, f"validation map {index} does not exist")
        return {"label": studio.validation[index].reshape(-1).tolist()}

    @app.post("/api/label")
    def upload_label(body: UploadIn) -> dict[str, object]:
        label = label_from_image(studio, decode_data_url(body.png, "the label upload"))
        return {"label": label.reshape(-1).tolist()}

    @app.post("/api/label.png")
    def label_png(body: LabelIn) -> Response:
        label = checked_label(body.label)
        image = Image.fromarray(label.astype(np.uint8 if label.max() < 256 else np.int32))
        if image.mode == "L":
            # Indexed PNG: class indices a program reads back, colours a person recognises.
            image = image.convert("P")
            image.putpalette(studio.palette.reshape(-1).tolist())
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png")

    @app.post("/api/synthesize")
    def synthesize(body: SynthesizeIn) -> dict[str, object]:
        label = checked_label(body.label)
        style_image = None
        if body.style:
            style_image = decode_data_url(body.style, "the style upload").convert("RGB")
        app.state.last_label = label
        outputs = []
        with lock:
            for run in studio.runs:
                batch = label_batch(studio, [label], run.size)
                style, note = None, ""
                if style_image is not None:
                    if run.has_encoder:
                        height, width = run.size
                        resized = style_image.resize((width, height), Image.Resampling.BICUBIC)
                        style = image_to_tensor(resized)[None].to(studio.device)
                    else:
                        note = "no image encoder (encoder=none): style ignored"
                k = body.k if run.uses_noise else 1
                if body.k > 1 and k == 1:
                    note = "deterministic given the label map: one image"
                torch.manual_seed(body.seed)
                images = [
                    png_data_url(
                        tensor_to_uint8(run.module.synthesize(batch, style_image=style)[0])
                    )
                    for _ in range(k)
                ]
                outputs.append({"name": run.name, "images": images, "note": note})
        return {"runs": outputs}

    return app
