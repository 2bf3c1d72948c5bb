"""Wire models for models, versions and handlers (API.md §2, §3)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    GetJsonSchemaHandler,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from pie.core.ids import ID_MAX_LENGTH, ID_PATTERN, VERSION_MAX_LENGTH, VERSION_PATTERN
from pie.core.schemas import MAX_LIST_ITEMS, Input
from pie.tenancy.schemas import FeatureDefinition

_PARTITIONS = "aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b|aws-iso-e|aws-iso-f|aws-eusc"
LAMBDA_ARN = re.compile(
    rf"^arn:(?:{_PARTITIONS}):lambda:[a-z]{{2}}(?:-[a-z]+)+-\d{{1,2}}:\d{{12}}:function:[A-Za-z0-9_-]{{1,64}}$"
)
LAMBDA_QUALIFIER = re.compile(r"^(?:\$LATEST|[0-9]{1,20}|[A-Za-z0-9_-]{1,128})$")
ECS_TARGET = re.compile(r"^[A-Za-z0-9_-]{1,255}/[A-Za-z0-9_-]{1,255}(?::[1-9][0-9]{0,9})?$")

Identifier = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
VersionString = Annotated[
    str, Field(min_length=1, max_length=VERSION_MAX_LENGTH, pattern=VERSION_PATTERN)
]
Metadata = dict[str, Any]


class _Sparse(Input):
    """Optional members that are unset leave the JSON instead of showing as ``null``.

    Pydantic documents a wrap serializer by its return type, a free-form object (so the
    handler ``oneOf`` of every answer matched all three variants); the fields' schema, without
    the serializer, is the truth: the optional members are simply absent.
    """

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value is not None}

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler({key: value for key, value in schema.items() if key != "serialization"})


class LambdaHandler(_Sparse):
    """An AWS Lambda function, invoked asynchronously; ``version`` is the qualifier."""

    type: Literal["lambda"]
    arn: str = Field(
        max_length=256,
        description="Lambda function ARN: arn:aws:lambda:<region>:<account>:function:<name>.",
        examples=["arn:aws:lambda:us-west-2:123456789012:function:train"],
        json_schema_extra={"pattern": LAMBDA_ARN.pattern},
    )
    version: str | None = Field(
        None,
        description="Lambda qualifier (version or alias).",
        json_schema_extra={"pattern": LAMBDA_QUALIFIER.pattern},
    )

    @field_validator("arn")
    @classmethod
    def _function_arn(cls, value: str) -> str:
        if not LAMBDA_ARN.fullmatch(value):
            raise ValueError(
                "must be a Lambda function ARN "
                "arn:<partition>:lambda:<region>:<account>:function:<name> "
                "(put a qualifier in `version`)"
            )
        return value

    @field_validator("version")
    @classmethod
    def _qualifier(cls, value: str | None) -> str | None:
        if value is not None and not LAMBDA_QUALIFIER.fullmatch(value):
            raise ValueError("must be a Lambda version number, alias name or $LATEST")
        return value


class EcsTaskHandler(Input):
    """An ECS task: ``<cluster>/<task_definition>`` (short cluster name, ``family[:revision]``)."""

    type: Literal["ecs_task"]
    value: str = Field(
        max_length=512,
        description=(
            "Target ECS task to run, in the form <cluster>/<task_definition>. <cluster> is the "
            "ECS cluster short name (no / in the name); full cluster ARNs cannot be encoded "
            "unambiguously in this field. <task_definition> is the task family (optionally "
            "family:revision)."
        ),
        examples=["pricing/train-model:3"],
        json_schema_extra={"pattern": ECS_TARGET.pattern},
    )

    @field_validator("value")
    @classmethod
    def _target(cls, value: str) -> str:
        if value.startswith("arn:"):
            raise ValueError("full cluster ARNs are not accepted; use <cluster>/<task_definition>")
        if not ECS_TARGET.fullmatch(value):
            raise ValueError(
                "must be <cluster>/<family>[:<revision>] with letters, digits, - and _"
            )
        return value


class InProcessHandler(Input):
    """An implementation registered in this PIE installation (see ``GET /v2/handlers``)."""

    type: Literal["in_process"]
    value: str = Field(
        min_length=1,
        max_length=128,
        description="Which in-process implementation to run (registered in the API).",
        examples=["echo"],
    )


Handler = Annotated[LambdaHandler | EcsTaskHandler | InProcessHandler, Field(discriminator="type")]


class Handlers(Input):
    training: Handler
    inference: Handler


class Contract(_Sparse):
    input_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema Draft 2020-12 document for the payload accepted."
    )
    output_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema Draft 2020-12 document for the successful output."
    )


class HandlerContracts(_Sparse):
    """Typed input/output contracts per handler type (JSON Schema Draft 2020-12)."""

    training: Contract | None = None
    inference: Contract | None = None


ModelStatus = Literal["pending", "active"]
VersionStatus = Literal["pending", "training", "active", "failed"]


class ModelCreate(Input):
    id: Identifier | None = Field(None, description="Generated (UUIDv7) when omitted.")
    name: str = Field(min_length=1, max_length=256)
    description: str = Field(max_length=4096)
    handlers: Handlers
    handler_contracts: HandlerContracts | None = None
    metadata: Metadata = Field(default_factory=dict)


class ModelUpdate(Input):
    """Each field given replaces the model's; ``handler_contracts: null`` clears them."""

    name: str | None = Field(None, min_length=1, max_length=256)
    description: str | None = Field(None, max_length=4096)
    handlers: Handlers | None = None
    handler_contracts: HandlerContracts | None = None
    metadata: Metadata | None = None


class Model(BaseModel):
    id: str
    name: str
    description: str
    handlers: Handlers
    handler_contracts: HandlerContracts | None
    metadata: Metadata
    status: ModelStatus
    created_at: datetime
    updated_at: datetime


class VersionCreate(Input):
    version: VersionString
    description: str = Field("", max_length=4096)
    metadata: Metadata = Field(default_factory=dict)
    features: list[FeatureDefinition] | None = Field(
        None,
        max_length=MAX_LIST_ITEMS,
        description="Feature freeze: the feature definitions this version is built for.",
    )


class Version(BaseModel):
    model_id: str
    version: str
    description: str
    metadata: Metadata
    status: VersionStatus
    handlers: Handlers
    handler_contracts: HandlerContracts | None
    features: list[FeatureDefinition] | None
    training_output: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class StatusChange(Input):
    status: VersionStatus


class TriggeredEvent(_Sparse):
    """A subscription fired by the change: ``job_id`` when it started, ``error`` when not."""

    subscription_id: str
    job_id: str | None = None
    error: str | None = None


class ModelAndVersion(BaseModel):
    model: Model
    version: Version


class VersionAndModel(BaseModel):
    version: Version
    model: Model


class StatusChanged(BaseModel):
    model: Model
    version: Version
    triggered_events: list[TriggeredEvent]


class HandlerImplementation(BaseModel):
    name: str
    source: Literal["builtin", "entry_point", "configured"]
    description: str
    is_async: bool
