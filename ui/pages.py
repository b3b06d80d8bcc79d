"""The pages: `/` (full), `/kiosk` (one job, large, self-resetting) and `/embed` (iframes).

With `PageOptions.kiosk` the kiosk is also served at `/`, so a native full-screen window,
which always opens the root, shows it. The kiosk and each embedded kind follow their own
active task (see ui.viewers), so they show only tasks they started and leave `/` alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nicegui import app, events, ui
from nicegui.client import Client
from pydantic import ValidationError
from starlette.requests import Request

from services.jobs import Job, JobRegistry, describe_invalid_params
from services.models import TaskView
from services.settings import Settings
from ui import design
from ui.components import cancelled_panel, failure_panel, result_loading, status_bar
from ui.controller import PageController
from ui.frame import bare_frame, frame
from ui.history import HistoryList
from ui.params_form import ParamsForm
from ui.toast import toast
from ui.viewers import Viewers

log = logging.getLogger(__name__)

SUBMIT_KEYS = "Ctrl+Enter"


@dataclass(frozen=True, slots=True)
class PageOptions:
    """How main.py configured the surfaces."""

    kiosk: bool = False  # serve the kiosk at `/` too
    kiosk_kind: str | None = None  # the kiosk's one job kind (default: the first one)
    kiosk_reset: float = 15.0  # seconds after a task ends until the kiosk shows a fresh form
    local_worker: bool = True  # a worker runs in this process (else tasks wait for one)


def register(settings: Settings, registry: JobRegistry, options: PageOptions | None = None) -> None:
    """Add the pages; main.py calls this once at start-up."""
    options = options or PageOptions()
    viewers = Viewers(settings)
    app.on_shutdown(viewers.close_all)
    kiosk_job = registry.get(options.kiosk_kind or registry.kinds()[0])

    async def kiosk(client: Client) -> None:
        await kiosk_page(client, viewers, kiosk_job, options.kiosk_reset, options.local_worker)

    async def full(client: Client) -> None:
        await full_page(client, viewers, registry, options.local_worker)

    ui.page("/")(kiosk if options.kiosk else full)
    ui.page("/kiosk", title="Tasklight kiosk")(kiosk)

    @ui.page("/embed", title="Tasklight")
    async def embed(client: Client, request: Request) -> None:
        query = dict(request.query_params)
        await embed_page(client, viewers, registry, query, options.local_worker)


# The full page ---------------------------------------------------------------------------


async def full_page(
    client: Client, viewers: Viewers, registry: JobRegistry, local_worker: bool = True
) -> None:
    """Job picker and form, live status with cancel, result with chart, history."""
    dark = bool(app.storage.user.get("dark"))
    page = PageController(client, viewers, dark=dark, local_worker=local_worker)
    job = registry.get(registry.kinds()[0])
    form: ParamsForm

    def choose_kind(kind: str) -> None:
        nonlocal job
        job = registry.get(kind)
        job_form.refresh()

    async def submit() -> None:
        if page.submitting:
            return  # a click while the last one is on its way (the controller checks too)
        params = form.validated()
        if params is None:
            toast(not_submitted(form.problem), "warning")
            return
        submit_button.props("loading").disable()
        try:
            await page.submit(job.kind, params.model_dump(mode="json"))
        finally:
            submit_button.props(remove="loading").enable()

    @ui.refreshable
    def job_form() -> None:
        nonlocal form
        ui.label(job.description).classes(design.MUTED)
        form = ParamsForm(job.Params)

    with frame("watch background tasks live"):
        with ui.row().classes("w-full items-start gap-4"):
            with ui.column().classes(design.MAIN_COLUMN):
                with ui.card().classes(design.CARD):
                    ui.label("New task").classes(design.SECTION_TITLE)
                    ui.select(
                        {j.kind: j.title for j in registry},
                        value=job.kind,
                        label="Job",
                        on_change=lambda e: choose_kind(e.value),
                    ).classes("w-full").mark("kind")
                    job_form()
                    with ui.row().classes("items-center"):
                        submit_button = ui.button("Submit", icon="play_arrow", on_click=submit)
                        submit_button.mark("submit").disable()
                        ui.label(f"or {SUBMIT_KEYS}").classes(design.MUTED)
                _task_area(page)
            with ui.column().classes(design.SIDE_COLUMN):
                page.history = HistoryList(page.watch, page.rerun)

    _submit_on_keys(submit)
    ui.timer(1.0, page.tick)
    page.on_ready = submit_button.enable
    await page.start()


def _task_area(page: PageController) -> None:
    """Status bar with cancel, the failure/cancel panels and the result card."""
    status_bar(page.state, on_cancel=page.cancel)
    failure_panel(page.state)
    cancelled_panel(page.state)
    with ui.card().classes(design.CARD).mark("result") as result_card:
        ui.label("Result").classes(design.SECTION_TITLE)
        page.result_box = ui.column().classes("w-full")
        with page.result_box:
            result_loading()
    result_card.bind_visibility_from(page.state, "is_completed")
    ui.label().classes(f"{design.MUTED} text-xs tl-task-id").mark("task-id").bind_text_from(
        page.state, "task_id", backward=lambda task_id: f"task {task_id}" if task_id else ""
    )


def not_submitted(problem: str) -> str:
    """The toast for a form that blocked a submission (the fields say the details)."""
    return f"Not submitted: {problem}" if problem else "Not submitted: check the marked fields"


def _submit_on_keys(submit: Any) -> None:
    async def on_key(event: events.KeyEventArguments) -> None:
        if event.action.keydown and event.key.enter and event.modifiers.ctrl:
            await submit()

    ui.keyboard(on_key=on_key, ignore=[])


# The kiosk ----------------------------------------------------------------------------------


async def kiosk_page(
    client: Client, viewers: Viewers, job: Job, reset_seconds: float, local_worker: bool = True
) -> None:
    """Full screen, dark, large type, one job; a fresh form `reset_seconds` after a task ends."""
    surface = f"kiosk:{job.kind}"
    page = PageController(client, viewers, dark=True, local_worker=local_worker, surface=surface)
    countdown = {"left": 0.0}
    form: ParamsForm

    async def submit() -> None:
        if page.submitting:
            return
        params = form.validated()
        if params is None:
            toast(not_submitted(form.problem), "warning")
            return
        countdown["left"] = 0
        reset_note.set_visibility(False)
        await page.submit(job.kind, params.model_dump(mode="json"))

    def on_terminal(view: TaskView) -> None:
        countdown["left"] = reset_seconds
        _show_countdown()

    def _show_countdown() -> None:
        left = countdown["left"]
        reset_note.text = f"A new form appears in {left:.0f} s"
        reset_note.set_visibility(left > 0)

    async def tick() -> None:
        page.tick()
        if countdown["left"] <= 0:
            return
        countdown["left"] -= 1
        _show_countdown()
        if countdown["left"] <= 0:
            await page.watch(None)
            kiosk_form.refresh()

    @ui.refreshable
    def kiosk_form() -> None:
        nonlocal form
        form = ParamsForm(job.Params)

    with bare_frame(kiosk=True):
        with ui.row().classes("items-center gap-3"):
            ui.icon("lightbulb", size="lg", color="amber")
            ui.label(f"Tasklight · {job.title}").classes("text-h4")
        ui.label(job.description).classes("text-h6 opacity-80")
        with ui.card().classes(design.CARD):
            kiosk_form()
            submit_button = ui.button("Start", icon="play_arrow", on_click=submit)
            submit_button.props("size=xl").classes("w-full").mark("submit").disable()
        _task_area(page)
        reset_note = ui.label().classes("text-h6 opacity-80").mark("kiosk-reset")
        reset_note.set_visibility(False)

    page.on_terminal = on_terminal
    page.on_ready = submit_button.enable
    _submit_on_keys(submit)
    ui.timer(1.0, tick)
    await page.start()


# The embed ----------------------------------------------------------------------------------


async def embed_page(
    client: Client,
    viewers: Viewers,
    registry: JobRegistry,
    query: dict[str, str],
    local_worker: bool = True,
) -> None:
    """Status bar and one Submit button for an iframe; the query string picks the job.

    `/embed?kind=demo&steps=3` submits `demo` with 3 steps; other fields keep their
    defaults. `theme=dark` or `theme=light` overrides the browser's stored theme.
    """
    theme = query.pop("theme", None)
    kind = query.pop("kind", None) or registry.kinds()[0]
    page = PageController(
        client, viewers, dark=theme == "dark", local_worker=local_worker, surface=f"embed:{kind}"
    )
    with bare_frame(dark=None if theme not in ("dark", "light") else theme == "dark"):
        if kind not in registry:
            ui.label(f"Unknown job kind {kind!r}; known: {', '.join(registry.kinds())}").classes(
                "text-negative"
            ).mark("embed-error")
            return
        job = registry.get(kind)
        try:
            params = job.Params.model_validate(query)
            problem = ""
        except ValidationError as exc:
            params, problem = None, describe_invalid_params(exc)

        async def submit() -> None:
            if params is not None:
                await page.submit(job.kind, params.model_dump(mode="json"))

        with ui.row().classes("w-full items-center no-wrap"):
            button = ui.button(f"Run {job.title}", icon="play_arrow", on_click=submit)
            button.props("dense").mark("submit").disable()
            summary = ui.label().classes("text-sm ellipsis").mark("result-summary")
        if problem:
            ui.label(problem).classes("text-negative text-sm").mark("embed-error")
        status_bar(page.state, on_cancel=page.cancel).props("flat bordered")
        failure = ui.label().classes("text-negative text-sm").mark("reason")
        failure.bind_text_from(page.state, "error")

    def show_summary(payload: dict[str, Any] | None) -> None:
        text = (payload or {}).get("summary")
        summary.text = text if isinstance(text, str) else ""

    page.on_result = show_summary
    page.on_ready = (lambda: None) if params is None else button.enable
    ui.timer(1.0, page.tick)
    await page.start()
