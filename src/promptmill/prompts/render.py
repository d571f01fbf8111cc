"""Rendering rows into chat messages or raw prompts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from promptmill.errors import InputError, UsageError

if TYPE_CHECKING:
    from promptmill.prompts.formats import ChatFormat
    from promptmill.prompts.library import NamedPrompt

_DEFAULT_FIELDS = ("prompt", "question", "input", "text")


# A NamedTuple, not a frozen dataclass: one per row planned, and a frozen dataclass sets
# each field through object.__setattr__ (several times the cost of a tuple).
class RenderedPrompt(NamedTuple):
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
    # A named prompt of the library (--prompt NAME).
    prompt: NamedPrompt | None = None

    def __post_init__(self) -> None:
        given = [x for x in (self.template, self.prompt_field, self.messages_field) if x]
        if len(given) > 1:
            raise UsageError(
                "give one of --template, --prompt-field or --messages-field, not several"
            )
        if self.messages_field and not self.chat:
            raise UsageError("--messages-field needs a chat model; drop --text")
        if self.prompt is not None and (self.template or self.messages_field):
            raise UsageError(
                f"--prompt {self.prompt.name} is the prompt: drop --template/--messages-field"
            )
        if self.prompt is not None and self.prompt.template is not None and self.prompt_field:
            raise UsageError(f"--prompt {self.prompt.name} is a template over the row's "
                             "fields: drop --prompt-field")

    @classmethod
    def build(
        cls,
        template: str | None = None,
        prompt_field: str | None = None,
        messages_field: str | None = None,
        system: str | None = None,
        chat: bool = True,
        prompt: str | None = None,
        prompts_files: Sequence[Path | str] = (),
    ) -> PromptSpec:
        """A spec whose template and system prompt may be given inline or as a file path.

        ``prompt`` names a prompt of the library (with the user's ``prompts_files``).
        """
        named = None
        if prompt is not None:
            from promptmill.prompts.library import get_prompt

            named = get_prompt(prompt, prompts_files)
        return cls(
            template=_inline_or_file(template, "--template"),
            prompt_field=prompt_field,
            messages_field=messages_field,
            system=_inline_or_file(system, "--system"),
            chat=chat,
            prompt=named,
        )

    @property
    def given(self) -> bool:
        """Whether the job says where its prompt comes from (else the defaults decide)."""
        return bool(self.template or self.prompt_field or self.messages_field or self.prompt)

    def for_first_row(self, row: dict[str, Any] | None) -> PromptSpec:
        """This spec, or the ``question`` prompt when none is given and rows have choices.

        A seed-002 dataset (question, choices, answer...) then needs no template at all.
        """
        if self.given or row is None or "choices" not in row:
            return self
        from promptmill.prompts.library import get_prompt

        return replace(self, prompt=get_prompt("question"))

    def fingerprint(self, chat_format: ChatFormat | None = None) -> dict[str, Any]:
        """What of the spec decides the job's identity.

        Keys appear only when used, so that jobs stored before they existed still match.
        """
        values: dict[str, Any] = {
            "template": self.template,
            "prompt_field": self.prompt_field,
            "messages_field": self.messages_field,
            "system": self.system,
            "chat": self.chat,
        }
        if self.prompt is not None:
            values["prompt"] = self.prompt.fingerprint()
        if chat_format is not None:
            values["chat_format"] = chat_format.name
        return values

    def renderer(self, source: str, chat_format: ChatFormat | None = None) -> Renderer:
        """A renderer for rows read from ``source`` (named in errors).

        With ``chat_format`` a chat is rendered into one text prompt, for backends fed text.
        """
        return Renderer(self, source, chat_format)


class Renderer:
    """Renders rows of one input; compiles the template once."""

    def __init__(self, spec: PromptSpec, source: str,
                 chat_format: ChatFormat | None = None) -> None:
        self.spec = spec
        self.source = source
        self.chat_format = chat_format
        named = spec.prompt
        # The library prompt's system prompt, unless --system gives another.
        self.system = spec.system if spec.system is not None else (
            named.system if named is not None else None)
        # Text put before the row's prompt field (a library task prompt).
        self.task_text = named.text if named is not None else None
        template = named.template if named is not None else spec.template
        self._template: Any = None
        # jinja2's UndefinedError, kept here: importing it on each row cost a microsecond.
        self._undefined_error: Any = None
        if template is not None:
            from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
            from jinja2.sandbox import SandboxedEnvironment

            env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)
            try:
                self._template = env.from_string(template)
            except TemplateSyntaxError as exc:
                which = f"prompt {named.name} ({named.origin})" if named else "template"
                raise UsageError(
                    f"{which} line {exc.lineno}: {exc.message}: fix the Jinja2 syntax"
                ) from None
            # A plain dict, not Jinja's ChainMap over the environment's globals: each render
            # copies the globals, and walking a ChainMap cost more than the template itself.
            self._template.globals = dict(self._template.globals)
            self._undefined_error = UndefinedError

    def where(self, index: int) -> str:
        """Where row ``index`` is, for messages."""
        from promptmill.data import row_place

        return row_place(Path(self.source), index)

    def render(self, index: int, row: dict[str, Any]) -> RenderedPrompt:
        """The prompt of one row, or an InputError naming the row and field."""
        rendered = self._render(index, row)
        if self.chat_format is None or rendered.messages is None:
            return rendered
        from promptmill.prompts.formats import ConversationError

        try:
            text = self.chat_format.render(rendered.messages, with_bos=False)
        except ConversationError as exc:
            raise InputError(
                f"{self.where(index)}: chat format {self.chat_format.name}: {exc}"
            ) from None
        return RenderedPrompt(None, text)

    def _render(self, index: int, row: dict[str, Any]) -> RenderedPrompt:
        spec = self.spec
        if spec.messages_field:
            return RenderedPrompt(self._messages(index, row), None)
        if self._template is not None:
            try:
                text = self._template.render(row)
            except self._undefined_error as exc:
                raise InputError(
                    f"{self.where(index)}: the template uses a field the row lacks "
                    f"({exc.message}): "
                    "add it to every row or change the template"
                ) from None
            except Exception as exc:  # a template can raise anything; name the row
                raise InputError(f"{self.where(index)}: template failed: {exc}") from None
        else:
            text = self._field(index, row)
            if self.task_text is not None:
                text = self.task_text + text
        text = text.strip()
        if not text:
            raise InputError(f"{self.where(index)}: the prompt is empty: fill it or drop the row")
        return self.wrap(text)

    def wrap(self, text: str) -> RenderedPrompt:
        """A row's prompt text (rendered, stripped) as the prompt sent: with the system
        prompt, as chat messages or one text prompt."""
        system = self.system
        if not self.spec.chat:
            prompt = f"{system}\n\n{text}" if system else text
            return RenderedPrompt(None, prompt)
        messages: list[dict[str, Any]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": text})
        return RenderedPrompt(messages, None)

    def texts(self, rows: list[dict[str, Any]]) -> list[str] | None:
        """The prompt texts of many rows (rendered, stripped), as ``render`` would make them
        before ``wrap``; None where a row needs ``render`` itself: an error to name (a field
        missing or empty, a template failing), a value not a string, a chat format, a
        messages field."""
        spec = self.spec
        if spec.messages_field or self.chat_format is not None:
            return None
        try:
            if self._template is not None:
                render = self._template.render
                texts = [render(row) for row in rows]
            else:
                name = spec.prompt_field or _default_field(rows)
                if name is None:
                    return None
                texts = [row[name] for row in rows]
                if texts and set(map(type, texts)) != {str}:
                    return None
                if self.task_text is not None:
                    task = self.task_text
                    texts = [task + text for text in texts]
        except Exception:  # the row's error is raised, naming it, by render()
            return None
        texts = list(map(str.strip, texts))  # each a str (checked above, or rendered)
        return texts if all(texts) else None

    def _field(self, index: int, row: dict[str, Any]) -> str:
        name = self.spec.prompt_field
        if name is None:
            name = next((f for f in _DEFAULT_FIELDS if f in row), None)
            if name is None:
                raise InputError(
                    f"{self.where(index)}: no prompt field ({', '.join(_DEFAULT_FIELDS)}): "
                    "pass --prompt-field NAME or --template"
                )
        if name not in row:
            raise InputError(
                f"{self.where(index)}: field {name!r} is missing: add it or pass another "
                "--prompt-field"
            )
        value = row[name]
        if value is None:
            raise InputError(
                f"{self.where(index)}: field {name!r} is empty: fill it or drop the row"
            )
        return value if isinstance(value, str) else str(value)

    def _messages(self, index: int, row: dict[str, Any]) -> list[dict[str, Any]]:
        name = self.spec.messages_field or "messages"
        value = row.get(name)
        if not isinstance(value, list) or not value or not all(
            isinstance(m, dict) and "role" in m and "content" in m for m in value
        ):
            raise InputError(
                f"{self.where(index)}: field {name!r} must be a non-empty list of "
                '{"role": ..., "content": ...} messages'
            )
        if self.system and value[0].get("role") != "system":
            return [{"role": "system", "content": self.system}, *value]
        return list(value)


def _default_field(rows: list[dict[str, Any]]) -> str | None:
    """The default prompt field of every row in ``rows`` when it is the same for all (the
    first of ``_DEFAULT_FIELDS`` each has); None where rows differ or have none."""
    if not rows:
        return None
    name = next((f for f in _DEFAULT_FIELDS if f in rows[0]), None)
    if name is None:
        return None
    earlier = _DEFAULT_FIELDS[:_DEFAULT_FIELDS.index(name)]
    if all(name in row and not any(f in row for f in earlier) for row in rows):
        return name
    return None


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
