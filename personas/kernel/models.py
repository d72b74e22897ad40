"""Chat models for personas: the live one (ChatOpenAI, any OpenAI-compatible URL), a scripted
fake for tests, and cassette replay/recording for demos, evals and ``chat --replay``.

``resolve_model`` picks what answers and says so in plain words, so every run can tell the user
whether a live model, recorded responses, or no model (the policy decides) was used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable

from .cassette import (
    Cassette,
    evidence_of,
    message_to_response,
    package_version,
    public_base_url,
    request_key,
    response_to_message,
)
from .config import Config
from .errors import UsageProblem

__all__ = ["CassetteChatModel", "ModelChoice", "ScriptedChatModel", "ToolAwareChatModel", "live_model",
           "recorded_provenance", "resolve_model"]

Reply = AIMessage | str | Callable[[Sequence[BaseMessage]], AIMessage | str]


class ToolAwareChatModel(BaseChatModel):
    """A chat model whose ``bind_tools`` records the tools (passed back as ``tools=``)."""

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Runnable[Any, Any]:
        return self.bind(tools=list(tools), tool_choice=tool_choice, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        result = self._generate(messages, stop, run_manager, **kwargs)
        message = result.generations[0].message
        assert isinstance(message, AIMessage)
        text = message.content if isinstance(message.content, str) else ""
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word + (" " if i < len(words) - 1 else "")
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        tool_chunks = [
            {"name": c["name"], "args": __import__("json").dumps(c["args"]), "id": c["id"], "index": i}
            for i, c in enumerate(message.tool_calls)
        ]
        if tool_chunks:
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=tool_chunks))


class ScriptedChatModel(ToolAwareChatModel):
    """Answers from a script: each entry is an AIMessage, a string, or a function of the messages.

    Used by tests (never the network). ``requests`` keeps what it was asked, to assert on.
    """

    script: list[Any]
    requests: list[list[BaseMessage]] = []
    position: int = 0

    def __init__(self, script: Sequence[Reply], **kwargs: Any) -> None:
        super().__init__(script=list(script), requests=[], **kwargs)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def __repr_args__(self) -> Any:
        # LangChain puts repr(model) in each run's trace; listing every scripted reply and every
        # request made there (a benchmark's whole script) cost more than the call it describes.
        return [("replies", len(self.script)), ("position", self.position)]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.requests.append(list(messages))
        if self.position >= len(self.script):
            raise RuntimeError(f"ScriptedChatModel ran out of replies after {len(self.script)} calls")
        entry = self.script[self.position]
        self.position += 1
        reply = entry(messages) if callable(entry) else entry
        message = AIMessage(content=reply) if isinstance(reply, str) else reply
        return ChatResult(generations=[ChatGeneration(message=message)])


class CassetteChatModel(ToolAwareChatModel):
    """Replays (or, with ``live``, records) model responses from a Cassette.

    ``model_name`` and ``generation`` (temperature, ...) are what the run asks for; with the bound
    tools, ``tool_choice``, ``strict``, ``parallel_tool_calls`` and the messages they make the
    request's key (``cassette.request_key``). Recording into a ``recorded`` cassette keeps what the
    endpoint said about each answer: response id, the model that served it, token usage.
    """

    cassette: Any
    live: Any = None
    model_name: str = ""
    generation: dict[str, Any] = {}

    @property
    def _llm_type(self) -> str:
        return "cassette"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools = list(kwargs.pop("tools", None) or [])
        settings = {**self.generation, **({"stop": list(stop)} if stop else {})}
        schemas: dict[str, Any] = {}
        request = request_key(messages, tools, model=self.model_name, settings=settings, bind=kwargs, schemas=schemas)
        if self.live is not None:
            bind = {k: v for k, v in kwargs.items() if v is not None}
            model = self.live.bind_tools(tools, **bind) if tools else (self.live.bind(**bind) if bind else self.live)
            message = model.invoke(messages, stop=stop) if stop else model.invoke(messages)
            assert isinstance(message, AIMessage)
            evidence = evidence_of(message) if self.cassette.kind == "recorded" else None
            self.cassette.record(request, message_to_response(message), evidence, schemas)
            return ChatResult(generations=[ChatGeneration(message=message)])
        response, evidence = self.cassette.next_response(request, schemas)
        message = response_to_message(response, self.cassette.position, evidence)
        return ChatResult(generations=[ChatGeneration(message=message)])


def recorded_provenance(requested: str, config: Config, **extra: Any) -> dict[str, Any]:
    """The provenance of a cassette about to be recorded (``served_models`` is filled from the answers)."""
    import datetime as _dt

    return {"kind": "recorded", "requested_model": requested, "served_models": [],
            "base_url": public_base_url(config.openai_base), "date": _dt.date.today().isoformat(),
            "package_version": package_version(), **extra}


@dataclass
class ModelChoice:
    """The model a run uses (None: the policy decides) and a sentence saying which it is."""

    model: BaseChatModel | None
    description: str
    kind: str  # "live" | "recorded" | "authored" | "none" | "scripted"
    cassette: Cassette | None = None


def live_model(model_name: str, config: Config, temperature: float = 0.0, *, streaming: bool = True) -> BaseChatModel:
    """ChatOpenAI at ``config``'s endpoint (``PERSONAS_MODEL`` overrides ``model_name``).

    ``streaming=False`` (recording) gets the response id and token usage from every endpoint, some of
    which leave usage out of streamed answers.
    """
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    return ChatOpenAI(
        model=config.model or model_name,
        base_url=config.openai_base_url or None,
        api_key=SecretStr(config.openai_api_key) if config.openai_api_key else None,
        temperature=temperature,
        streaming=streaming,
        max_retries=2,
        timeout=config.model_timeout,
    )


def resolve_model(
    model_name: str,
    config: Config,
    *,
    temperature: float = 0.0,
    replay: str | None = None,
    record: str | None = None,
    prefer_replay: bool = False,
    rerecord_hint: str = "",
) -> ModelChoice:
    """Live when ``config`` has an OpenAI key (recording if ``record``), else the ``replay`` cassette, else none.

    With ``prefer_replay`` a given cassette wins over a live key (evals replay by default).
    """
    has_key = bool(config.openai_api_key)
    name = config.model or model_name
    base = config.openai_base
    if record:
        if not has_key:
            raise RuntimeError("recording needs a live model: set OPENAI_API_KEY (and OPENAI_BASE_URL, PERSONAS_MODEL)")
        cassette = Cassette.new(record, recorded_provenance(name, config))
        model = CassetteChatModel(cassette=cassette, live=live_model(model_name, config, temperature, streaming=False),
                                  model_name=name, generation={"temperature": temperature})
        return ModelChoice(model, f"live model {name} at {base} (recording to {record})", "live", cassette)
    if has_key and not (prefer_replay and replay):
        return ModelChoice(live_model(model_name, config, temperature), f"live model {name} at {base}", "live")
    if replay:
        if Path(replay).is_dir():
            raise UsageProblem(f"--replay {replay!r} is a folder; give a cassette file (a .json of recorded answers)")
        cassette = Cassette.load(replay, rerecord_hint)
        kind = str(cassette.provenance.get("kind"))
        model = CassetteChatModel(cassette=cassette, model_name=name, generation={"temperature": temperature})
        return ModelChoice(model, f"responses {cassette.describe()}", kind, cassette)
    if config.openai_base_url:  # a local server's URL alone does not make a model: the key is what turns it on
        return ModelChoice(None, f"no model configured (OPENAI_BASE_URL is {base} but OPENAI_API_KEY is not set; "
                           "set it too: any value a local server accepts, such as 'local'): the persona's "
                           "policy decides", "none")
    return ModelChoice(None, "no model configured (set OPENAI_API_KEY): the persona's policy decides", "none")
