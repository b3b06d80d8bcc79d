"""The landing page `/`: pick a job kind, fill its form, submit, watch the task live."""

from __future__ import annotations

import logging
from collections.abc import Callable

from nicegui import app, background_tasks, ui
from nicegui.client import Client

from services.errors import ServiceError
from services.jobs import JobRegistry
from services.models import TaskView
from services.settings import Settings
from services.task_context import Notice
from ui import design
from ui.components import failure_panel, result_view, status_bar
from ui.frame import frame
from ui.params_form import ParamsForm
from ui.state import TaskState
from ui.viewers import Viewer, Viewers

log = logging.getLogger(__name__)


def register(settings: Settings, registry: JobRegistry) -> None:
    """Add the pages; main.py calls this once at start-up."""
    viewers = Viewers(settings)
    app.on_shutdown(viewers.close_all)

    @ui.page("/")
    async def landing(client: Client) -> None:
        browser_id: str = app.storage.browser["id"]
        storage = app.storage.user
        state = TaskState()
        viewer: Viewer | None = None
        forget: list[Callable[[], None]] = []  # removes this tab's listeners
        shown_result: str | None = None
        job = registry.get(registry.kinds()[0])

        def on_view(view: TaskView) -> None:
            nonlocal shown_result
            state.apply(view)
            if not view.is_completed and shown_result is not None:
                shown_result = None
                result_box.clear()
            elif view.is_completed and view.result_id and view.result_id != shown_result:
                shown_result = view.result_id
                background_tasks.create(show_result(view.result_id), name="load result")

        def on_notice(notice: Notice) -> None:
            if not client.is_deleted:
                with client:
                    ui.notify(notice.text, type=notice.level)

        async def show_result(result_id: str) -> None:
            assert viewer is not None
            try:
                payload = await viewer.result(result_id)
            except ServiceError as exc:
                with client:
                    ui.notify(f"could not load the result: {exc}", type="negative")
                return
            if state.result_id != result_id or client.is_deleted:
                return  # another task became active meanwhile
            result_box.clear()
            with result_box:
                if payload is None:
                    ui.label("The result is not available.").classes(design.MUTED)
                else:
                    result_view(payload)

        def choose_kind(kind: str) -> None:
            nonlocal job
            job = registry.get(kind)
            job_form.refresh()

        async def submit() -> None:
            if viewer is None:
                ui.notify("not connected to the project yet", type="warning")
                return
            params = form.validated()
            if params is None:
                ui.notify(form.problem, type="warning")
                return
            submit_button.disable()
            try:
                await viewer.submit(job.kind, params.model_dump(mode="json"))
            except ServiceError as exc:
                ui.notify(str(exc), type="negative")
            finally:
                submit_button.enable()

        @ui.refreshable
        def job_form() -> None:
            nonlocal form
            ui.label(job.description).classes(design.MUTED)
            form = ParamsForm(job.Params)

        form: ParamsForm
        with frame("watch background tasks live"):
            with ui.card().classes(design.CARD):
                ui.label("New task").classes(design.SECTION_TITLE)
                ui.select(
                    {j.kind: j.title for j in registry},
                    value=job.kind,
                    label="Job",
                    on_change=lambda e: choose_kind(e.value),
                ).classes("w-full").mark("kind")
                job_form()
                submit_button = ui.button("Submit", icon="play_arrow", on_click=submit).mark(
                    "submit"
                )
                submit_button.disable()

            status_bar(state)
            failure_panel(state)
            with ui.card().classes(design.CARD).mark("result") as result_card:
                ui.label("Result").classes(design.SECTION_TITLE)
                result_box = ui.column().classes("w-full")
            result_card.bind_visibility_from(state, "is_completed")
            ui.label().classes(f"{design.MUTED} text-xs").mark("task-id").bind_text_from(
                state, "task_id", backward=lambda task_id: f"task {task_id}" if task_id else ""
            )

        async def leave() -> None:
            for remove in forget:
                remove()
            await viewers.release(browser_id)

        client.on_delete(leave)
        await client.connected()
        try:
            viewer = await viewers.acquire(browser_id, storage)
        except ServiceError as exc:
            log.warning("could not open a session for browser %s: %s", browser_id, exc)
            ui.notify(f"cannot reach the project: {exc}", type="negative", timeout=0)
            return
        forget.append(viewer.context.add_listener(on_view))
        forget.append(viewer.context.add_notice_listener(on_notice))
        on_view(viewer.context.view)
        submit_button.enable()
