"""The shapes the outside world sees: tool results and trajectory records.

These pydantic models are the tools' output schemas (clients get them as JSON
Schema) and the on-disk form of trajectories, so a field added here is a
public promise.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, computed_field

RunStatus = Literal["open", "running", "completed", "failed", "limit_reached", "cancelled", "interrupted", "closed"]


class TokenUsage(BaseModel):
    root_input_tokens: int = 0
    root_output_tokens: int = 0
    sub_input_tokens: int = 0
    sub_output_tokens: int = 0


class CodeError(BaseModel):
    type: str = Field(description="exception type, e.g. ZeroDivisionError, TimeoutError, RestrictedCodeError")
    message: str
    traceback: str | None = Field(None, description="traceback through the submitted code's own lines")
    line: int | None = Field(None, description="line of the submitted code where it failed")


def code_error(result: Any) -> CodeError | None:
    """The error of a sandbox ``ExecResult`` in its public shape."""
    e = result.error
    return None if e is None else CodeError(type=e.type, message=e.message, traceback=e.traceback, line=e.line)


class VariableInfo(BaseModel):
    name: str
    type: str
    size: int | None = Field(None, description="len() for strings and containers")


class SubCallSummary(BaseModel):
    count: int = 0
    failed: int = 0
    cached: int = Field(0, description="answered from the sub-call cache: no request sent, nothing spent")
    input_tokens: int = 0
    output_tokens: int = 0


class BudgetView(BaseModel):
    """What a run or session may still spend, and what it spent; a limit of null means none is set."""

    sub_calls_used: int
    sub_calls_limit: int
    sub_calls_remaining: int
    tokens_used: int = Field(description="input + output tokens spent (root turns too, in a run)")
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    cost_usd_spent: float | None = Field(None, description="null when a model without a price was used")
    cost_usd_limit: float | None = None
    cost_usd_remaining: float | None = None


class BudgetReport(BaseModel):
    session_id: str
    session: BudgetView = Field(description="the session's budget, spent by repl_exec sub-calls")
    run_id: str | None = Field(None, description="the rlm_query run in progress on this session, if any")
    run: BudgetView | None = Field(None, description="that run's budget (root turns, sub-calls, nested runs)")


class LoadContextResult(BaseModel):
    session_id: str = Field(description="pass this to repl_exec, rlm_query and close_session")
    trajectory_id: str = Field(description="the session's record of every repl_exec (see get_trajectory)")
    type: Literal["str", "list[str]"] = Field(description="the type of `context` in the REPL")
    documents: int
    chars: int
    lines: int
    estimated_tokens: int = Field(description="about chars / 4")
    preview: str = Field(description="the first few hundred characters of the corpus")
    added_documents: int = Field(description="documents added by this call")
    corpus_id: str | None = Field(
        None,
        description="for inline content: its SHA-256, under which the server keeps it for you. Pass it back as "
        "corpus_id to load the same text into another session (on any replica sharing the store) without "
        "sending it again",
    )
    skipped: list[str] = Field(default_factory=list, description="files left out, with the reason")
    notes: list[str] = Field(default_factory=list)


class ReplExecResult(BaseModel):
    stdout: str = Field(description="printed output (and the value of a last expression), head and tail kept")
    error: CodeError | None = None
    variables: list[VariableInfo] = Field(default_factory=list)
    elapsed_ms: float
    sub_calls: SubCallSummary = Field(default_factory=SubCallSummary)
    final: str | None = Field(None, description="the answer, when the code called FINAL or FINAL_VAR")
    timed_out: bool = False
    restarted: bool = Field(False, description="the sandbox was restarted: variables from earlier calls are lost")
    notes: list[str] = Field(default_factory=list)


class SessionInfo(BaseModel):
    session_id: str
    trajectory_id: str
    created_at: float
    idle_s: float
    type: Literal["str", "list[str]"]
    documents: int
    chars: int
    busy: bool
    sub_calls_used: int
    sub_call_budget: int
    budget: BudgetView | None = Field(None, description="calls, tokens and dollars of repl_exec sub-calls")
    runs: list[str] = Field(default_factory=list, description="trajectory ids of this session's rlm_query runs")


class KindUsage(BaseModel):
    count: int
    bytes: int
    max_bytes: int | None = Field(None, description="size limit of this kind (the least recently used go first)")
    max_age_days: float | None = Field(None, description="removed after this many days unused")
    goes_with: str | None = Field(
        None, description="the kind whose items these go with (and whose limits count them too), if any"
    )


class StorageUsage(BaseModel):
    location: str = Field(description="the data directory or the S3 store")
    measured_at: float
    kinds: dict[str, KindUsage] = Field(
        description="corpora (inline content), derived (converted sources), trajectories, runs (what a resume "
        "needs), subcalls (the sub-call cache), sessions (records)"
    )


class SessionList(BaseModel):
    sessions: list[SessionInfo]
    max_sessions: int
    storage: StorageUsage | None = Field(None, description="what the stored data takes, per kind, and its limits")


class CloseSessionResult(BaseModel):
    session_id: str
    closed: bool


class NotRestored(BaseModel):
    name: str
    reason: str


class Resumption(BaseModel):
    """A stopped run continued (rlm_query with resume): where, from what, and what the REPL got back."""

    at: float = Field(description="Unix time the run was resumed")
    after_step: int = Field(description="steps recorded before it; the continuation's steps follow")
    from_status: RunStatus
    from_message: str | None = None
    query: str | None = Field(None, description="the follow-up question or instruction given with resume, if any")
    session_id: str
    restored: list[str] = Field(default_factory=list, description="REPL variables restored from the snapshot")
    not_restored: list[NotRestored] = Field(default_factory=list, description="variables that were not, and why")
    snapshot_step: int | None = Field(None, description="the step after which the restored variables were saved")
    notes: list[str] = Field(default_factory=list, description="what else happened (e.g. damaged records skipped)")


class RLMQueryResult(BaseModel):
    status: RunStatus = Field(description="completed, failed, limit_reached, running (wait=false), cancelled")
    answer: str | None = None
    message: str | None = Field(None, description="why the run ended, when that is not obvious")
    trajectory_id: str = Field(description="poll get_trajectory with it while the run goes on, or to inspect it")
    session_id: str
    iterations: int = Field(0, description="root turns taken")
    sub_calls: int = 0
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: float | None = Field(None, description="estimate from the price table; null for an unknown model")
    elapsed_s: float = 0.0
    cached_sub_calls: int = Field(0, description="sub-calls answered from the cache (in sub_calls, spending nothing)")
    cost_saved_usd: float | None = Field(None, description="what the cached sub-calls would have cost")
    budget: BudgetView | None = Field(None, description="the run's budget at the end: what is left")
    resumed: Resumption | None = Field(None, description="with resume: what was restored, and what was not")


class SubCallRecord(BaseModel):
    model: str
    started_at: float = Field(description="Unix time the call started")
    latency_ms: float
    prompt_chars: int
    prompt_preview: str
    response_preview: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None
    cached: bool = Field(False, description="answered from the sub-call cache: its tokens were spent once, earlier")
    corpus_spans: list[list[int]] | None = Field(
        None,
        description="[start, end) character ranges of the corpus found verbatim in the prompt (instructions and "
        "reworded text are not corpus text); null when not known",
    )


class Step(BaseModel):
    index: int
    turn: int = Field(0, description="the root turn (rlm_query) or the repl_exec call this step belongs to")
    started_at: float
    elapsed_ms: float
    root_text: str | None = Field(None, description="what the root model said before its code (rlm_query runs)")
    root_reasoning: str | None = Field(
        None, description="the root's reasoning in this turn (<think> blocks, reasoning fields); never run or answered"
    )
    root_input_tokens: int = 0
    root_output_tokens: int = 0
    root_latency_ms: float = Field(0.0, description="how long the root model took to write this turn")
    code: str | None = None
    stdout: str = ""
    error: CodeError | None = None
    final: str | None = None
    sub_call_count: int = 0
    sub_input_tokens: int = 0
    sub_output_tokens: int = 0
    cached_sub_calls: int = Field(0, description="sub-calls answered from the cache (counted in sub_call_count)")
    sub_calls: list[SubCallRecord] = Field(default_factory=list)
    child_runs: list[str] = Field(default_factory=list, description="trajectory ids of nested runs (rlm_query in code)")
    notes: list[str] = Field(default_factory=list)


class Damage(BaseModel):
    """A stored record that could not be read: the rest of the trajectory is shown without it."""

    where: str = Field(description="the damaged record: a line of a file, or an S3 object")
    problem: str = Field(description="why it could not be read")
    after_step: int | None = Field(None, description="index of the last good step before it (null: before every step)")


class Trajectory(BaseModel):
    id: str
    kind: Literal["session", "run"] = Field(description="a client-driven session, or one rlm_query run")
    session_id: str
    status: RunStatus
    created_at: float
    updated_at: float
    query: str | None = None
    answer: str | None = None
    message: str | None = Field(None, description="why the run ended, when that is not obvious")
    root_model: str | None = None
    sub_model: str | None = None
    corpus_chars: int | None = Field(None, description="size of the corpus worked on, in characters")
    parent_id: str | None = Field(None, description="the run whose code started this one (rlm_query in the REPL)")
    depth: int = Field(1, description="1 for a run started by a client; 2 and more for nested runs")
    iterations: int = Field(0, description="root turns (rlm_query) or repl_exec calls")
    sub_calls: int = 0
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: float | None = None
    cost_saved_usd: float | None = Field(None, description="what sub-calls answered from the cache would have cost")
    elapsed_s: float = 0.0
    resumes: list[Resumption] = Field(default_factory=list, description="each time the run was resumed")
    sub_prompt_chars: int = Field(0, description="characters sent to sub-models in prompts, over all steps")
    detail: Literal["full", "summary"] = "full"
    steps: list[Step] = Field(default_factory=list)
    damaged: list[Damage] = Field(
        default_factory=list,
        description="stored records that could not be read, each with where and why; where one may have been a "
        "step, a step with error type DamagedRecord marks the gap in steps",
    )
    viewer_url: str | None = Field(
        None,
        description="over HTTP: this trajectory as a page to open in a browser (a signed link, valid for 15 minutes, "
        "when the server authenticates)",
    )
    _owner: str = PrivateAttr(default="local")
    """The principal it belongs to (:mod:`rlm_mcp.principals`); kept in the store, never shown."""

    @property
    def owner(self) -> str:
        return self._owner

    @computed_field(description="sub-calls answered from the cache, over all steps")  # type: ignore[prop-decorator]
    @property
    def cached_sub_calls(self) -> int:
        return sum(step.cached_sub_calls for step in self.steps)

    @computed_field(  # type: ignore[prop-decorator]
        description="sub_prompt_chars / corpus_chars: prompt sizes over the corpus size, instructions and repeats "
        "included, so it can exceed 1 (the viewer shows the distinct corpus text sent)"
    )
    @property
    def corpus_share(self) -> float | None:
        if not self.corpus_chars:
            return None
        return round(self.sub_prompt_chars / self.corpus_chars, 4)
