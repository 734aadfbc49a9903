"""Pydantic models of every JSON body the server reads and answers, as the tinker SDK 0.38
sends and reads them.

The requests mirror ``tinker.types`` (field names and defaults) but are our own, with bounds on
every number and string: the served OpenAPI schema is what the fuzz test drives, and a body
that passes these models must never make the server fail. Unknown fields are ignored, so a
newer SDK that adds one keeps working.

The answers (``...Response``, below the requests) are each route's ``response_model``: they
name exactly the fields the SDK reads, every one always sent (``None`` as ``null``), so the
served schema documents the wire and a route cannot send a field by accident.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Id = Annotated[str, Field(min_length=1, max_length=200)]
Path_ = Annotated[str, Field(min_length=1, max_length=400)]
SeqId = Annotated[int, Field(ge=0, le=2**62)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class ClientConfigRequest(Body):
    sdk_version: Annotated[str, Field(max_length=100)] = ""


class CreateSessionRequest(Body):
    tags: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=100)
    user_metadata: dict[str, Any] | None = None
    sdk_version: Annotated[str, Field(max_length=100)] = ""
    project_id: Annotated[str, Field(max_length=200)] | None = None
    display_name: Annotated[str, Field(max_length=200)] | None = None


class SessionRequest(Body):
    session_id: Id


class FinishRequest(Body):
    reason: dict[str, Any] | None = None
    detail: Annotated[str, Field(max_length=2000)] | None = None


class LoraConfig(Body):
    rank: Annotated[int, Field(ge=1, le=256)]
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    train_unembed: bool = True
    train_mlp: bool = True
    train_attn: bool = True


class OptimizerConfig(Body):
    type: Annotated[str, Field(max_length=40)] = "adamw"


class CreateModelRequest(Body):
    session_id: Id
    model_seq_id: Annotated[int, Field(ge=0, le=10**9)]
    base_model: Annotated[str, Field(min_length=1, max_length=200)]
    lora_config: LoraConfig | None = None
    optimizer_config: OptimizerConfig = Field(default_factory=OptimizerConfig)


class GetInfoRequest(Body):
    model_id: Id


class AdamParams(Body):
    learning_rate: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)] = 1e-4
    beta1: Annotated[float, Field(ge=0, lt=1)] = 0.9
    beta2: Annotated[float, Field(ge=0, lt=1)] = 0.95
    eps: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 1e-12
    weight_decay: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)] = 0.0
    grad_clip_norm: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] = 0.0


class OptimStepRequest(Body):
    adam_params: AdamParams
    model_id: Id
    seq_id: SeqId | None = None


class SaveWeightsRequest(Body):
    model_id: Id
    path: Path_ | None = None
    seq_id: SeqId | None = None
    ttl_seconds: Annotated[int, Field(ge=0, le=10**10)] | None = None
    overwrite: bool = False


class SaveWeightsForSamplerRequest(Body):
    model_id: Id
    path: Path_ | None = None
    sampling_session_seq_id: Annotated[int, Field(ge=0, le=10**12)] | None = None
    kind: Literal["snapshot", "inflight"] = "snapshot"
    seq_id: SeqId | None = None
    ttl_seconds: Annotated[int, Field(ge=0, le=10**10)] | None = None


class SaveWeightsExternalRequest(Body):
    model_id: Id
    path: Path_
    seq_id: SeqId | None = None
    age_encryption_recipients: list[Annotated[str, Field(max_length=1000)]] | None = None


class LoadWeightsRequest(Body):
    model_id: Id | None = None
    seq_id: SeqId | None = None
    session_id: Id | None = None
    model_seq_id: Annotated[int, Field(ge=0, le=10**9)] | None = None
    base_model: Annotated[str, Field(max_length=200)] | None = None
    path: Path_
    optimizer: bool
    weights_access_token: Annotated[str, Field(max_length=1000)] | None = None


class CreateSamplingSessionRequest(Body):
    session_id: Id
    sampling_session_seq_id: Annotated[int, Field(ge=0, le=10**12)]
    base_model: Annotated[str, Field(max_length=200)] | None = None
    model_path: Path_ | None = None


class EncodedTextChunk(Body):
    type: Literal["encoded_text"] = "encoded_text"
    tokens: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(max_length=1_000_000)


class ModelInput(Body):
    chunks: list[EncodedTextChunk] = Field(max_length=10_000)


class SamplingParams(Body):
    max_tokens: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    stop: (
        Annotated[str, Field(min_length=1, max_length=200)]
        | list[Annotated[str, Field(min_length=1, max_length=200)]]
        | list[Annotated[int, Field(ge=0, le=2**31 - 1)]]
        | None
    ) = None
    temperature: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 1.0
    top_k: Annotated[int, Field(ge=-1, le=1_000_000)] = -1
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0


class SampleRequest(Body):
    num_samples: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    prompt: ModelInput
    sampling_params: SamplingParams
    base_model: Annotated[str, Field(max_length=200)] | None = None
    model_path: Path_ | None = None
    sampling_session_id: Id | None = None
    seq_id: SeqId | None = None
    prompt_logprobs: bool | None = None
    topk_prompt_logprobs: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    topk_sample_logprobs: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    prompt_alt_tokens_k: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    prompt_logprobs_last_n: Annotated[int, Field(ge=1, le=10**9)] | None = None


class FutureRetrieveRequest(Body):
    request_id: Id
    allow_metadata_only: bool = False


class CancelFutureRequest(Body):
    request_id: Id


class TelemetryRequest(Body):
    events: list[Any] = Field(default_factory=list, max_length=10_000)


# --------------------------------------------------------------------------- answers


class Answer(BaseModel):
    model_config = ConfigDict(protected_namespaces=())


class StatusResponse(Answer):
    """``healthz`` (``ok``) and ``telemetry`` (``accepted``)."""

    status: str


class TypedResponse(Answer):
    """An acknowledgement that only names itself: ``session_heartbeat``, ``finish_session``."""

    type: str


class ClientConfigResponse(Answer):
    """The SDK's feature switches; kitchen serves none of the optional transports."""

    parallel_fwdbwd_chunks: bool
    proto_compress_fwdbwd: bool
    use_pyqwest_transport: bool
    sample_use_retrieve_futures: bool
    custom_loss_server_side: bool
    sample_join_sampling_session: bool
    pjwt_auth_enabled: bool


class SupportedModel(Answer):
    model_name: str
    trainable: bool
    sampleable: bool


class CapabilitiesResponse(Answer):
    supported_models: list[SupportedModel]


class CreateSessionResponse(Answer):
    type: Literal["create_session"] = "create_session"
    session_id: str


class UntypedFutureResponse(Answer):
    """A request accepted as a future of a model: retrieve its result by ``request_id``."""

    request_id: str
    model_id: str


class ModelData(Answer):
    arch: str
    model_name: str
    tokenizer_id: str


class GetInfoResponse(Answer):
    type: Literal["get_info"] = "get_info"
    model_id: str
    model_data: ModelData
    is_lora: bool
    lora_rank: int
    model_name: str


class CreateSamplingSessionResponse(Answer):
    type: Literal["create_sampling_session"] = "create_sampling_session"
    sampling_session_id: str


class SamplerResponse(Answer):
    sampler_id: str
    base_model: str
    model_path: str | None


class SampleFutureResponse(Answer):
    request_id: str
    sample_sequence_ids: list[str]


class TryAgainResponse(Answer):
    """``retrieve_future`` before the result is ready: the SDK polls again."""

    type: Literal["try_again"] = "try_again"
    request_id: str
    queue_state: str
    """``active``, or ``paused_capacity`` while the server is saturated (the SDK logs the
    reason and keeps waiting)."""
    queue_state_reason: str | None = None


class Checkpoint(Answer):
    checkpoint_id: str
    checkpoint_type: str
    time: str
    tinker_path: str
    size_bytes: int


class CheckpointsResponse(Answer):
    checkpoints: list[Checkpoint]
    cursor: str | None


class WeightsUrlsResponse(Answer):
    urls: dict[str, str]
    expires: str
