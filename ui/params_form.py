"""A form built from a job's pydantic parameter model: one input per field.

Numbers get their limits and defaults from the field's constraints, booleans become
checkboxes, `Literal` choices a select, optional fields may be left empty; anything else is
a text input that pydantic parses. A field's `json_schema_extra` may ask for another widget:
`{"widget": "file", "accept": ".csv", "name_field": "file"}` is an upload whose text becomes
the value (and whose file name goes to `name_field`), `{"widget": "hidden"}` shows nothing.
The model itself validates, so the form holds no rules of its own.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal

import annotated_types
from nicegui import events, ui
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from services.jobs import describe_invalid_params


class ParamsForm:
    """Inputs for every field of ``model``, created in the current NiceGUI container."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self.inputs: dict[str, Any] = {}
        self.problem = ""
        with ui.element("div").classes("w-full grid grid-cols-1 sm:grid-cols-3 gap-x-4"):
            for name, field in model.model_fields.items():
                self.inputs[name] = _field_input(name, field, self.inputs)

    def fill(self, values: dict[str, Any]) -> None:
        """Put values (e.g. a finished task's parameters) into the inputs."""
        for name, value in values.items():
            if name in self.inputs:
                self.inputs[name].value = value

    def values(self) -> dict[str, Any]:
        """Current raw values keyed by field name; empty optional fields are left out."""
        values = {name: element.value for name, element in self.inputs.items()}
        return {name: value for name, value in values.items() if value not in (None, "")}

    def validated(self) -> BaseModel | None:
        """Return the parameters as the model, or mark the wrong fields and return None.

        After a None, ``problem`` holds one readable line about every error.
        """
        self.problem = ""
        for element in self.inputs.values():
            if isinstance(element, ui.number | ui.input | ui.select | FileInput):
                element.error = None
        try:
            return self.model.model_validate(self.values())
        except ValidationError as exc:
            self.problem = describe_invalid_params(exc)
            for error in exc.errors():
                element = self.inputs.get(str(error["loc"][0])) if error["loc"] else None
                if isinstance(element, FileInput) and error["type"] == "missing":
                    element.error = "choose a file first"
                elif isinstance(element, ui.number | ui.input | ui.select | FileInput):
                    element.error = error["msg"]
            return None


def field_label(name: str, field: FieldInfo) -> str:
    """The field's title, else its name in words; optional fields say so."""
    label = field.title or name.replace("_", " ").capitalize()
    return f"{label} (optional)" if _is_optional(field) else label


class Hidden:
    """A parameter the person does not edit (set by another widget)."""

    def __init__(self, value: Any) -> None:
        self.value = value


class FileInput:
    """An upload whose decoded text is the value; too large or binary files are refused."""

    def __init__(self, label: str, field: FieldInfo, on_name: Callable[[str], None]) -> None:
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        self.max_bytes = _max_length(field)
        self.value = ""
        self._on_name = on_name
        with ui.column().classes("w-full gap-1 sm:col-span-3") as self.element:
            self.upload = ui.upload(
                label=label,
                auto_upload=True,
                max_files=1,
                max_file_size=self.max_bytes,
                on_upload=self._on_upload,
                on_rejected=self._on_rejected,
            )
            self.upload.props(f'accept="{extra.get("accept", "")}" flat bordered')
            self.upload.classes("w-full")
            self.hint = f"No file chosen yet. {field.description or ''}".strip()
            self.info = ui.label(self.hint).classes("text-sm opacity-70")
            self.info.mark("file-info")
            self._error = ui.label().classes("text-negative text-sm").mark("file-error")
            self._error.set_visibility(False)

    @property
    def error(self) -> str | None:
        return self._error.text or None

    @error.setter
    def error(self, message: str | None) -> None:
        self._error.text = message or ""
        self._error.set_visibility(bool(message))

    def mark(self, name: str) -> FileInput:
        self.upload.mark(name)
        return self

    async def _on_upload(self, event: events.UploadEventArguments) -> None:
        self.upload.reset()
        data = await event.file.read()
        try:
            text = _decode(data, self.max_bytes)
        except ValueError as exc:
            self.value = ""
            self.info.text = self.hint
            self.error = f"{event.file.name}: {exc}"
            return
        self.value = text
        self.error = None
        self.info.text = f"{event.file.name} · {_size(len(data))} · {text.count(chr(10)):,} lines"
        self._on_name(event.file.name)

    def _on_rejected(self) -> None:
        self.error = f"that file is larger than {_size(self.max_bytes)}; choose a smaller one"


def _decode(data: bytes, max_bytes: int) -> str:
    if len(data) > max_bytes:
        raise ValueError(f"larger than {_size(max_bytes)}")
    if b"\x00" in data[:4096]:
        raise ValueError("not a text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text; save it as UTF-8 and try again") from None
    if not text.strip():
        raise ValueError("the file is empty")
    return text


def _size(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f} MB"
    if count >= 1_000:
        return f"{count / 1_000:.0f} kB"
    return f"{count} bytes"


def _max_length(field: FieldInfo) -> int:
    for constraint in field.metadata:
        if isinstance(constraint, annotated_types.MaxLen):
            return constraint.max_length
    return 10_000_000


def _field_input(name: str, field: FieldInfo, inputs: dict[str, Any]) -> Any:
    base = _base_type(field)
    label = field_label(name, field)
    default = None if field.is_required() else field.get_default(call_default_factory=True)
    check = _checker(field)
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}

    if extra.get("widget") == "hidden":
        return Hidden(default)
    if extra.get("widget") == "file":
        name_field = str(extra.get("name_field", ""))

        def set_name(file_name: str) -> None:
            if name_field in inputs:
                inputs[name_field].value = file_name

        return FileInput(label, field, set_name).mark(name)
    if typing.get_origin(base) is Literal:
        element: ui.element = ui.select(list(typing.get_args(base)), label=label, value=default)
    elif base is bool:
        element = ui.checkbox(label, value=bool(default))
    elif base in (int, float):
        low, high = _limits(field)
        element = ui.number(
            label,
            value=default,
            min=low,
            max=high,
            step=1 if base is int else None,
            precision=0 if base is int else None,
            validation=check,
        ).props("clearable" if _is_optional(field) else "")
    else:
        element = ui.input(label, value="" if default is None else str(default), validation=check)
    if field.description:
        element.tooltip(field.description)
    return element.classes("w-full").mark(name)


def _checker(field: FieldInfo) -> typing.Callable[[Any], str | None]:
    """A live check for one input, using the field's own type and constraints."""
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[field.annotation, *field.metadata])
    optional = _is_optional(field)

    def check(value: Any) -> str | None:
        if value in (None, "") and (optional or not field.is_required()):
            return None
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            return exc.errors()[0]["msg"]
        return None

    return check


def _limits(field: FieldInfo) -> tuple[float | None, float | None]:
    low = high = None
    for constraint in field.metadata:
        if isinstance(constraint, annotated_types.Ge):
            low = constraint.ge
        elif isinstance(constraint, annotated_types.Gt):
            low = constraint.gt
        elif isinstance(constraint, annotated_types.Le):
            high = constraint.le
        elif isinstance(constraint, annotated_types.Lt):
            high = constraint.lt
    return low, high


def _is_optional(field: FieldInfo) -> bool:
    return type(None) in typing.get_args(field.annotation)


def _base_type(field: FieldInfo) -> Any:
    """``int | None`` -> ``int``; other annotations are returned unchanged."""
    annotation = field.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation
