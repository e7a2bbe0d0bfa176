from backflow.v1 import run_pb2 as _run_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SyncMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SYNC_MODE_UNSPECIFIED: _ClassVar[SyncMode]
    SYNC_MODE_UPSERT: _ClassVar[SyncMode]
    SYNC_MODE_INSERT: _ClassVar[SyncMode]
    SYNC_MODE_UPDATE: _ClassVar[SyncMode]
    SYNC_MODE_MIRROR: _ClassVar[SyncMode]
SYNC_MODE_UNSPECIFIED: SyncMode
SYNC_MODE_UPSERT: SyncMode
SYNC_MODE_INSERT: SyncMode
SYNC_MODE_UPDATE: SyncMode
SYNC_MODE_MIRROR: SyncMode

class Sync(_message.Message):
    __slots__ = ("name", "source", "primary_key", "destination", "mappings", "schedule", "options", "paused", "create_time", "update_time", "last_run")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_KEY_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    MAPPINGS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_FIELD_NUMBER: _ClassVar[int]
    name: str
    source: SyncSource
    primary_key: _containers.RepeatedScalarFieldContainer[str]
    destination: SyncDestination
    mappings: _containers.RepeatedCompositeFieldContainer[Mapping]
    schedule: Schedule
    options: SyncOptions
    paused: bool
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    last_run: str
    def __init__(self, name: _Optional[str] = ..., source: _Optional[_Union[SyncSource, _Mapping]] = ..., primary_key: _Optional[_Iterable[str]] = ..., destination: _Optional[_Union[SyncDestination, _Mapping]] = ..., mappings: _Optional[_Iterable[_Union[Mapping, _Mapping]]] = ..., schedule: _Optional[_Union[Schedule, _Mapping]] = ..., options: _Optional[_Union[SyncOptions, _Mapping]] = ..., paused: bool = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., last_run: _Optional[str] = ...) -> None: ...

class SyncSource(_message.Message):
    __slots__ = ("connection", "query")
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    connection: str
    query: str
    def __init__(self, connection: _Optional[str] = ..., query: _Optional[str] = ...) -> None: ...

class SyncDestination(_message.Message):
    __slots__ = ("connection", "object", "mode", "create_table", "shared")
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TABLE_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    connection: str
    object: str
    mode: SyncMode
    create_table: bool
    shared: bool
    def __init__(self, connection: _Optional[str] = ..., object: _Optional[str] = ..., mode: _Optional[_Union[SyncMode, str]] = ..., create_table: bool = ..., shared: bool = ...) -> None: ...

class Mapping(_message.Message):
    __slots__ = ("to",)
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    to: str
    def __init__(self, to: _Optional[str] = ..., **kwargs) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("every", "cron", "after_sync")
    EVERY_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    AFTER_SYNC_FIELD_NUMBER: _ClassVar[int]
    every: _duration_pb2.Duration
    cron: str
    after_sync: str
    def __init__(self, every: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., cron: _Optional[str] = ..., after_sync: _Optional[str] = ...) -> None: ...

class SyncOptions(_message.Message):
    __slots__ = ("allow_empty_source", "max_delete_fraction", "max_rejected_rows", "batch_size", "max_attempts")
    ALLOW_EMPTY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    MAX_DELETE_FRACTION_FIELD_NUMBER: _ClassVar[int]
    MAX_REJECTED_ROWS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    allow_empty_source: bool
    max_delete_fraction: float
    max_rejected_rows: int
    batch_size: int
    max_attempts: int
    def __init__(self, allow_empty_source: bool = ..., max_delete_fraction: _Optional[float] = ..., max_rejected_rows: _Optional[int] = ..., batch_size: _Optional[int] = ..., max_attempts: _Optional[int] = ...) -> None: ...

class CreateSyncRequest(_message.Message):
    __slots__ = ("sync_id", "sync")
    SYNC_ID_FIELD_NUMBER: _ClassVar[int]
    SYNC_FIELD_NUMBER: _ClassVar[int]
    sync_id: str
    sync: Sync
    def __init__(self, sync_id: _Optional[str] = ..., sync: _Optional[_Union[Sync, _Mapping]] = ...) -> None: ...

class CreateSyncResponse(_message.Message):
    __slots__ = ("sync",)
    SYNC_FIELD_NUMBER: _ClassVar[int]
    sync: Sync
    def __init__(self, sync: _Optional[_Union[Sync, _Mapping]] = ...) -> None: ...

class GetSyncRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetSyncResponse(_message.Message):
    __slots__ = ("sync",)
    SYNC_FIELD_NUMBER: _ClassVar[int]
    sync: Sync
    def __init__(self, sync: _Optional[_Union[Sync, _Mapping]] = ...) -> None: ...

class ListSyncsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSyncsResponse(_message.Message):
    __slots__ = ("syncs", "next_page_token")
    SYNCS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    syncs: _containers.RepeatedCompositeFieldContainer[Sync]
    next_page_token: str
    def __init__(self, syncs: _Optional[_Iterable[_Union[Sync, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateSyncRequest(_message.Message):
    __slots__ = ("sync", "update_mask")
    SYNC_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    sync: Sync
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, sync: _Optional[_Union[Sync, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateSyncResponse(_message.Message):
    __slots__ = ("sync",)
    SYNC_FIELD_NUMBER: _ClassVar[int]
    sync: Sync
    def __init__(self, sync: _Optional[_Union[Sync, _Mapping]] = ...) -> None: ...

class DeleteSyncRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteSyncResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TriggerSyncRequest(_message.Message):
    __slots__ = ("name", "full_resync", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FULL_RESYNC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    full_resync: bool
    request_id: str
    def __init__(self, name: _Optional[str] = ..., full_resync: bool = ..., request_id: _Optional[str] = ...) -> None: ...

class TriggerSyncResponse(_message.Message):
    __slots__ = ("run", "coalesced")
    RUN_FIELD_NUMBER: _ClassVar[int]
    COALESCED_FIELD_NUMBER: _ClassVar[int]
    run: _run_pb2.Run
    coalesced: bool
    def __init__(self, run: _Optional[_Union[_run_pb2.Run, _Mapping]] = ..., coalesced: bool = ...) -> None: ...

class PlanSyncRequest(_message.Message):
    __slots__ = ("name", "sample_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    sample_size: int
    def __init__(self, name: _Optional[str] = ..., sample_size: _Optional[int] = ...) -> None: ...

class PlanSyncResponse(_message.Message):
    __slots__ = ("read", "added", "changed", "unchanged", "removed", "sample_added", "sample_changed", "sample_removed")
    READ_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ADDED_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_REMOVED_FIELD_NUMBER: _ClassVar[int]
    read: int
    added: int
    changed: int
    unchanged: int
    removed: int
    sample_added: _containers.RepeatedScalarFieldContainer[str]
    sample_changed: _containers.RepeatedScalarFieldContainer[str]
    sample_removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, read: _Optional[int] = ..., added: _Optional[int] = ..., changed: _Optional[int] = ..., unchanged: _Optional[int] = ..., removed: _Optional[int] = ..., sample_added: _Optional[_Iterable[str]] = ..., sample_changed: _Optional[_Iterable[str]] = ..., sample_removed: _Optional[_Iterable[str]] = ...) -> None: ...

class PauseSyncRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class PauseSyncResponse(_message.Message):
    __slots__ = ("sync",)
    SYNC_FIELD_NUMBER: _ClassVar[int]
    sync: Sync
    def __init__(self, sync: _Optional[_Union[Sync, _Mapping]] = ...) -> None: ...

class ResumeSyncRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ResumeSyncResponse(_message.Message):
    __slots__ = ("sync",)
    SYNC_FIELD_NUMBER: _ClassVar[int]
    sync: Sync
    def __init__(self, sync: _Optional[_Union[Sync, _Mapping]] = ...) -> None: ...
