"""``spadelab study serve``: the rating page and its JSON API.

Routes (all JSON unless noted):
- ``GET /``: the page (static/study.html); ``GET /static/...``: its script and style.
- ``POST /api/rater`` ``{"rater": ID, "scripted": bool}``: register (idempotent), returns next.
- ``GET /api/next?rater=ID``: the rater's next pair, or ``done``.
- ``GET /api/image/{rater}/{pair}/{left|right|label}``: PNG; the URL says the side, never the method.
- ``POST /api/vote`` ``{"rater": ID, "pair": int, "choice": "left"|"right"}``: 200 with the next
  pair; 404 unknown pair/rater, 409 second vote, 422 malformed. A refused vote changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr

from spadelab.studio.study_db import Study, StudyError

STATIC_DIR = Path(__file__).parent / "static"


class RaterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rater: StrictStr
    scripted: StrictBool = False


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rater: StrictStr
    # Strict: "3" or 3.0 is a malformed vote (422), not pair 3.
    pair: StrictInt
    choice: Literal["left", "right"]


def create_study_app(study: Study) -> FastAPI:
    app = FastAPI(title="spadelab study", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.study = study
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(StudyError)
    async def study_error(request: Request, error: StudyError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "study.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/info")
    def info() -> dict[str, object]:
        return {
            "pairs": len(study.pairs),
            "question": study.meta.get("question", ""),
            "show_label": study.meta.get("show_label", "true") == "true",
        }

    @app.post("/api/rater")
    def rater(body: RaterIn) -> dict[str, object]:
        study.register(body.rater, body.scripted)
        return study.next_pair(body.rater)

    @app.get("/api/next")
    def next_pair(rater: str) -> dict[str, object]:
        return study.next_pair(rater)

    @app.get("/api/image/{rater}/{pair}/{side}")
    def image(rater: str, pair: int, side: str) -> FileResponse:
        path = study.image_path(rater, pair, side)
        if not path.is_file():
            raise HTTPException(500, f"{path} is missing from the study dir")
        return FileResponse(path, media_type="image/png")

    @app.post("/api/vote")
    def vote(body: VoteIn) -> dict[str, object]:
        return study.vote(body.rater, body.pair, body.choice)

    return app
