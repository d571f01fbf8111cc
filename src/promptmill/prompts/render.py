"""Rendering rows into chat messages or raw prompts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptmill.errors import InputError, UsageError

_DEFAULT_FIELDS = ("prompt", "question", "input", "text")


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """A row's prompt: chat ``messages`` or a raw ``prompt`` string."""

    messages: list[dict[str, Any]] | None
    prompt: str | None

    def payload(self) -> dict[str, Any]:
        """The JSON-able form kept in the job store."""
        return {"messages": self.messages} if self.messages is not None else {"prompt": self.prompt}


@dataclass(frozen=True)
class PromptSpec:
    """How a job builds prompts from rows."""

    template: str | None = None
    prompt_field: str | None = None
    messages_field: str | None = None
    system: str | None = None
    chat: bool = True

    def __post_init__(self) -> None:
        given = [x for x in (self.template, self.prompt_field, self.messages_field) if x]
        if len(given) > 1:
            raise UsageError(
                "give one of --template, --prompt-field or --messages-field, not several"
            )
        if self.messages_field and not self.chat:
            raise UsageError("--messages-field needs a chat model; drop --text")

    @classmethod
    def build(
        cls,
        template: str | None = None,
        prompt_field: str | None = None,
        messages_field: str | None = None,
        system: str | None = None,
        chat: bool = True,
    ) -> PromptSpec:
        """A spec whose template and system prompt may be given inline or as a file path."""
        return cls(
            template=_inline_or_file(template, "--template"),
            prompt_field=prompt_field,
            messages_field=messages_field,
            system=_inline_or_file(system, "--system"),
            chat=chat,
        )

    def fingerprint(self) -> dict[str, Any]:
        """What of the spec decides the job's identity."""
        return {
            "template": self.template,
            "prompt_field": self.prompt_field,
            "messages_field": self.messages_field,
            "system": self.system,
            "chat": self.chat,
        }

    def renderer(self, source: str) -> Renderer:
        """A renderer for rows read from ``source`` (named in errors)."""
        return Renderer(self, source)


class Renderer:
    """Renders rows of one input; compiles the template once."""

    def __init__(self, spec: PromptSpec, source: str) -> None:
        self.spec = spec
        self.source = source
        self._template: Any = None
        if spec.template is not None:
            from jinja2 import StrictUndefined, TemplateSyntaxError
            from jinja2.sandbox import SandboxedEnvironment

            env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)
            try:
                self._template = env.from_string(spec.template)
            except TemplateSyntaxError as exc:
                raise UsageError(
                    f"template line {exc.lineno}: {exc.message}: fix the Jinja2 syntax"
                ) from None

    def _where(self, index: int) -> str:
        from promptmill.data import row_place

        return row_place(Path(self.source), index)

    def render(self, index: int, row: dict[str, Any]) -> RenderedPrompt:
        """The prompt of one row, or an InputError naming the row and field."""
        spec = self.spec
        if spec.messages_field:
            return RenderedPrompt(self._messages(index, row), None)
        if self._template is not None:
            from jinja2 import UndefinedError

            try:
                text = self._template.render(**row)
            except UndefinedError as exc:
                raise InputError(
                    f"{self._where(index)}: the template uses a field the row lacks "
                    f"({exc.message}): "
                    "add it to every row or change the template"
                ) from None
            except Exception as exc:  # a template can raise anything; name the row
                raise InputError(f"{self._where(index)}: template failed: {exc}") from None
        else:
            text = self._field(index, row)
        text = text.strip()
        if not text:
            raise InputError(f"{self._where(index)}: the prompt is empty: fill it or drop the row")
        if not spec.chat:
            prompt = f"{spec.system}\n\n{text}" if spec.system else text
            return RenderedPrompt(None, prompt)
        messages: list[dict[str, Any]] = []
        if spec.system:
            messages.append({"role": "system", "content": spec.system})
        messages.append({"role": "user", "content": text})
        return RenderedPrompt(messages, None)

    def _field(self, index: int, row: dict[str, Any]) -> str:
        name = self.spec.prompt_field
        if name is None:
            name = next((f for f in _DEFAULT_FIELDS if f in row), None)
            if name is None:
                raise InputError(
                    f"{self._where(index)}: no prompt field ({', '.join(_DEFAULT_FIELDS)}): "
                    "pass --prompt-field NAME or --template"
                )
        if name not in row:
            raise InputError(
                f"{self._where(index)}: field {name!r} is missing: add it or pass another "
                "--prompt-field"
            )
        value = row[name]
        if value is None:
            raise InputError(
                f"{self._where(index)}: field {name!r} is empty: fill it or drop the row"
            )
        return value if isinstance(value, str) else str(value)

    def _messages(self, index: int, row: dict[str, Any]) -> list[dict[str, Any]]:
        name = self.spec.messages_field or "messages"
        value = row.get(name)
        if not isinstance(value, list) or not value or not all(
            isinstance(m, dict) and "role" in m and "content" in m for m in value
        ):
            raise InputError(
                f"{self._where(index)}: field {name!r} must be a non-empty list of "
                '{"role": ..., "content": ...} messages'
            )
        if self.spec.system and value[0].get("role") != "system":
            return [{"role": "system", "content": self.spec.system}, *value]
        return list(value)


def _inline_or_file(value: str | None, option: str) -> str | None:
    """The text of ``value``: a path's content if it names an existing file, else itself."""
    if value is None:
        return None
    if "\n" not in value and len(value) < 4096:
        path = Path(value)
        try:
            if path.is_file():
                return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{option} {value}: cannot read it ({exc}): check the file") from None
        if value.endswith((".jinja", ".j2", ".txt", ".md")):
            raise UsageError(f"{option} {value}: no such file: check the path")
    return value
