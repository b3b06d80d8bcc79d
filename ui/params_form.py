"""A form built from a job's pydantic parameter model: one input per field.

Numbers are text inputs parsed strictly: what the person typed is never clamped, rounded or
replaced by the default; a non-number, an empty required number or a value outside the
field's limits is shown at the field and blocks the submission. Booleans become checkboxes,
`Literal` choices a select, optional fields may be left empty; anything else is a text input
that pydantic parses. A field's `json_schema_extra` may ask for another widget:
`{"widget": "file", "accept": ".csv", "name_field": "file"}` is an upload whose text becomes
the value (and whose file name goes to `name_field`), `{"widget": "hidden"}` shows nothing.
The model itself validates, so the form holds no rules of its own.
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal

import annotated_types
from nicegui import events, ui
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

NUMBER_INPUTS: dict[type, str] = {int: "numeric", float: "decimal"}
_INTEGER = re.compile(r"[+-]?\d+")
# Python refuses to read longer integers (sys.int_info.default_max_str_digits is 4300).
MAX_INT_DIGITS = 4000
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class ParamsForm:
    """Inputs for every field of ``model``, created in the current NiceGUI container."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self.inputs: dict[str, Any] = {}
        self.problem = ""
        fields = model.model_fields
        self.names = {name: field.title or _words(name) for name, field in fields.items()}
        self.optional = {name: _is_optional(field) for name, field in fields.items()}
        bases = {name: _base_type(field) for name, field in fields.items()}
        self.numbers = {name: base for name, base in bases.items() if base in (int, float)}
        self._checks = {name: _checker(fields[name]) for name in self.numbers}
        with ui.element("div").classes("w-full grid grid-cols-1 sm:grid-cols-3 gap-x-4"):
            for name, field in fields.items():
                self.inputs[name] = _field_input(name, field, self.inputs)
        self._form_error = ui.label().classes("text-negative text-sm").mark("form-error")
        self._form_error.set_visibility(False)

    def fill(self, values: dict[str, Any]) -> None:
        """Put values (e.g. a finished task's parameters) into the inputs."""
        for name, value in values.items():
            if name in self.inputs:
                element = self.inputs[name]
                is_number = name in self.numbers and value is not None
                element.value = number_text(value) if is_number else value

    def values(self) -> dict[str, Any]:
        """Current values keyed by field name; empty optional fields are left out.

        Raises:
            FieldProblems: a number field is empty (and required) or not a number.
        """
        values: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for name, element in self.inputs.items():
            value = element.value
            if name in self.numbers:
                try:
                    value = parse_number(value, self.numbers[name])
                except ValueError as exc:
                    # The field's own message: a number too long to read gets its range error.
                    problems[name] = self._checks[name](element.value) or str(exc)
                    continue
                if value is None and not self.optional[name]:
                    problems[name] = "enter a number"
                    continue
            if value not in (None, ""):
                values[name] = value
        if problems:
            raise FieldProblems(problems)
        return values

    def validated(self) -> BaseModel | None:
        """Return the parameters as the model, or mark the wrong fields and return None.

        After a None, ``problem`` holds one readable line about every error.
        """
        self.problem = ""
        for element in self.inputs.values():
            if isinstance(element, ui.number | ui.input | ui.select | FileInput):
                element.error = None
        self._form_error.set_visibility(False)
        try:
            return self.model.model_validate(self.values())
        except FieldProblems as exc:
            problems, general = exc.problems, []
        except ValidationError as exc:
            problems, general = self._problems(exc)
        for name, message in problems.items():
            element = self.inputs.get(name)
            if isinstance(element, ui.number | ui.input | ui.select | FileInput):
                element.error = message
        self._form_error.text = "; ".join(general)
        self._form_error.set_visibility(bool(general))
        parts = [f"{self.names.get(name, name)}: {message}" for name, message in problems.items()]
        self.problem = "; ".join(general + [part for part in parts if part not in general])
        return None

    def _problems(self, exc: ValidationError) -> tuple[dict[str, str], list[str]]:
        """Field messages by name, and the model's own messages (fields named by label)."""
        problems: dict[str, str] = {}
        general: list[str] = []
        for error in exc.errors(include_url=False):
            name = str(error["loc"][0]) if error["loc"] else ""
            if name in self.inputs:
                element = self.inputs[name]
                missing = isinstance(element, FileInput) and error["type"] == "missing"
                problems.setdefault(name, "choose a file first" if missing else human_error(error))
                continue
            message = human_error(error)
            mentioned = [n for n in self.inputs if re.search(rf"\b{re.escape(n)}\b", message)]
            for field_name in mentioned:
                message = re.sub(rf"\b{re.escape(field_name)}\b", self.names[field_name], message)
            message = message[:1].upper() + message[1:]
            general.append(message)
            for field_name in mentioned:
                problems.setdefault(field_name, message)
        return problems, general


class FieldProblems(ValueError):
    """Inputs that could not even be read as their type, by field name."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {text}" for name, text in problems.items()))
        self.problems = problems


def parse_number(raw: Any, kind: type) -> int | float | None:
    """What the person typed as an int or float, exactly; None when empty.

    Raises:
        ValueError: not a (whole, finite) number; the message says what to enter.
    """
    if raw is None or isinstance(raw, bool):
        return None if raw is None else _not_a_number(kind)
    if isinstance(raw, int | float):
        text = repr(raw) if isinstance(raw, float) else str(raw)
    else:
        text = str(raw).strip()
    if not text:
        return None
    if kind is int:
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if not _INTEGER.fullmatch(text):
            return _not_a_number(kind)
        sign, digits = ("-" if text.startswith("-") else ""), text.lstrip("+-").lstrip("0")
        if len(digits) > MAX_INT_DIGITS:  # int() would refuse it (sys.int_info limit)
            raise NumberTooLarge(-1 if sign else 1)
        return int(sign + (digits or "0"))
    if not _DECIMAL.fullmatch(text):
        return _not_a_number(kind)
    value = float(text)
    if not math.isfinite(value):
        raise NumberTooLarge(-1 if value < 0 else 1)
    return value


class NumberTooLarge(ValueError):
    """A number beyond what can be read (too many digits, or beyond a float); ``sign`` ±1."""

    def __init__(self, sign: int) -> None:
        super().__init__("that number is too large")
        self.sign = sign


def _not_a_number(kind: type) -> Any:
    raise ValueError("enter a whole number" if kind is int else "enter a number")


def number_text(value: Any) -> str:
    """A number as the input shows it: 5, 0.25, 1 (not 1.0)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def human_error(error: Any) -> str:
    """A pydantic error as a short phrase: "must be 1 or more", "required", ..."""
    ctx = error.get("ctx") or {}
    kind = error.get("type", "")
    bounds = {
        "greater_than_equal": ("ge", "must be {} or more"),
        "less_than_equal": ("le", "must be {} or less"),
        "greater_than": ("gt", "must be more than {}"),
        "less_than": ("lt", "must be less than {}"),
    }
    if kind in bounds and bounds[kind][0] in ctx:
        key, text = bounds[kind]
        return text.format(number_text(ctx[key]))
    if kind == "missing":
        return "required"
    return str(error.get("msg", "invalid value")).removeprefix("Value error, ")


def field_label(name: str, field: FieldInfo) -> str:
    """The field's title, else its name in words; optional fields say so."""
    label = field.title or _words(name)
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
                on_multi_upload=self._on_upload,
                on_rejected=self._on_rejected,
            )
            self.upload.props("flat bordered")
            self.upload.props["accept"] = str(extra.get("accept", ""))
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

    async def _on_upload(self, event: events.MultiUploadEventArguments) -> None:
        """Take the first file of a POST only; its size is checked before it is read.

        The browser enforces `max_file_size` and `max_files`, but anyone can POST to the
        upload URL: a larger file is refused from its size alone, extra files are ignored.
        """
        self.upload.reset()
        if not event.files:
            return
        file = event.files[0]
        size = file.size()
        if size > self.max_bytes:
            self._refuse(file.name, f"larger than {_size(self.max_bytes)}")
            return
        data = await file.read()
        try:
            text = _decode(data, self.max_bytes)
        except ValueError as exc:
            self._refuse(file.name, str(exc))
            return
        self.value = text
        self.error = None
        self.info.text = f"{file.name} · {_size(len(data))} · {text.count(chr(10)):,} lines"
        self._on_name(file.name)

    def _refuse(self, name: str, reason: str) -> None:
        self.value = ""
        self.info.text = self.hint
        self.error = f"{name}: {reason}"

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
        text = "" if default is None else number_text(default)
        element = ui.input(label, value=text, validation=check)
        element.props["inputmode"] = NUMBER_INPUTS[base]
        element.props("clearable" if _is_optional(field) else "")
        if low is not None or high is not None:
            element.props["hint"] = _range_hint(low, high)
    else:
        element = ui.input(label, value="" if default is None else str(default), validation=check)
    if field.description:
        element.tooltip(field.description)
    return element.classes("w-full").mark(name)


def _checker(field: FieldInfo) -> typing.Callable[[Any], str | None]:
    """A live check for one input, using the field's own type and constraints."""
    annotation = field.annotation
    if field.metadata:
        annotation = Annotated[annotation, *field.metadata]
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    optional = _is_optional(field)
    base = _base_type(field)

    def check(value: Any) -> str | None:
        too_large = False
        if base in (int, float):
            try:
                value = parse_number(value, base)
            except NumberTooLarge as exc:
                # Its range error, as for any number past the limit (a stand-in that far out).
                value, too_large = exc.sign * (10**300 if base is int else 1e300), True
            except ValueError as exc:
                return str(exc)
            if value is None:
                return None if optional else "enter a number"
        if value in (None, "") and (optional or not field.is_required()):
            return None
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            return human_error(exc.errors(include_url=False)[0])
        if too_large:
            return "that number is too large"
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


def _words(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _range_hint(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{number_text(low)} to {number_text(high)}"
    return f"at least {number_text(low)}" if low is not None else f"at most {number_text(high)}"


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
