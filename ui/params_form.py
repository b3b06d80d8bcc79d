"""A form built from a job's pydantic parameter model: one input per field.

Numbers get their limits and defaults from the field's constraints, booleans become
checkboxes, optional fields may be left empty; anything else is a text input that pydantic
parses. The model itself validates, so the form holds no rules of its own.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any

import annotated_types
from nicegui import ui
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from services.jobs import describe_invalid_params


class ParamsForm:
    """Inputs for every field of ``model``, created in the current NiceGUI container."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self.inputs: dict[str, ui.element] = {}
        self.problem = ""
        with ui.element("div").classes("w-full grid grid-cols-1 sm:grid-cols-3 gap-x-4"):
            for name, field in model.model_fields.items():
                self.inputs[name] = _field_input(name, field)

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
            if isinstance(element, ui.number | ui.input):
                element.error = None
        try:
            return self.model.model_validate(self.values())
        except ValidationError as exc:
            self.problem = describe_invalid_params(exc)
            for error in exc.errors():
                element = self.inputs.get(str(error["loc"][0])) if error["loc"] else None
                if isinstance(element, ui.number | ui.input):
                    element.error = error["msg"]
            return None


def field_label(name: str, field: FieldInfo) -> str:
    """The field's title, else its name in words; optional fields say so."""
    label = field.title or name.replace("_", " ").capitalize()
    return f"{label} (optional)" if _is_optional(field) else label


def _field_input(name: str, field: FieldInfo) -> ui.element:
    base = _base_type(field)
    label = field_label(name, field)
    default = None if field.is_required() else field.get_default(call_default_factory=True)
    check = _checker(field)

    if base is bool:
        element: ui.element = ui.checkbox(label, value=bool(default))
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
