from backflow.v1 import sync_pb2 as _sync_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectorRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTOR_ROLE_UNSPECIFIED: _ClassVar[ConnectorRole]
    CONNECTOR_ROLE_SOURCE: _ClassVar[ConnectorRole]
    CONNECTOR_ROLE_DESTINATION: _ClassVar[ConnectorRole]
CONNECTOR_ROLE_UNSPECIFIED: ConnectorRole
CONNECTOR_ROLE_SOURCE: ConnectorRole
CONNECTOR_ROLE_DESTINATION: ConnectorRole

class ConnectorType(_message.Message):
    __slots__ = ("type", "summary", "roles", "capabilities", "config_schema", "config_fields")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELDS_FIELD_NUMBER: _ClassVar[int]
    type: str
    summary: str
    roles: _containers.RepeatedScalarFieldContainer[ConnectorRole]
    capabilities: ConnectorCapabilities
    config_schema: _struct_pb2.Struct
    config_fields: _containers.RepeatedCompositeFieldContainer[ConfigField]
    def __init__(self, type: _Optional[str] = ..., summary: _Optional[str] = ..., roles: _Optional[_Iterable[_Union[ConnectorRole, str]]] = ..., capabilities: _Optional[_Union[ConnectorCapabilities, _Mapping]] = ..., config_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., config_fields: _Optional[_Iterable[_Union[ConfigField, _Mapping]]] = ...) -> None: ...

class ConnectorCapabilities(_message.Message):
    __slots__ = ("modes", "schemaless", "max_decimal_precision", "timestamp_precision_digits", "creates_tables", "max_object_name", "max_column_name")
    MODES_FIELD_NUMBER: _ClassVar[int]
    SCHEMALESS_FIELD_NUMBER: _ClassVar[int]
    MAX_DECIMAL_PRECISION_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_PRECISION_DIGITS_FIELD_NUMBER: _ClassVar[int]
    CREATES_TABLES_FIELD_NUMBER: _ClassVar[int]
    MAX_OBJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_COLUMN_NAME_FIELD_NUMBER: _ClassVar[int]
    modes: _containers.RepeatedScalarFieldContainer[_sync_pb2.SyncMode]
    schemaless: bool
    max_decimal_precision: int
    timestamp_precision_digits: int
    creates_tables: bool
    max_object_name: IdentifierLimit
    max_column_name: IdentifierLimit
    def __init__(self, modes: _Optional[_Iterable[_Union[_sync_pb2.SyncMode, str]]] = ..., schemaless: bool = ..., max_decimal_precision: _Optional[int] = ..., timestamp_precision_digits: _Optional[int] = ..., creates_tables: bool = ..., max_object_name: _Optional[_Union[IdentifierLimit, _Mapping]] = ..., max_column_name: _Optional[_Union[IdentifierLimit, _Mapping]] = ...) -> None: ...

class IdentifierLimit(_message.Message):
    __slots__ = ("max", "unit")
    MAX_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    max: int
    unit: str
    def __init__(self, max: _Optional[int] = ..., unit: _Optional[str] = ...) -> None: ...

class ConfigField(_message.Message):
    __slots__ = ("path", "types", "required", "secret", "default_value", "allowed_values", "description")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_VALUES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    path: str
    types: _containers.RepeatedScalarFieldContainer[str]
    required: bool
    secret: bool
    default_value: _struct_pb2.Value
    allowed_values: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Value]
    description: str
    def __init__(self, path: _Optional[str] = ..., types: _Optional[_Iterable[str]] = ..., required: bool = ..., secret: bool = ..., default_value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., allowed_values: _Optional[_Iterable[_Union[_struct_pb2.Value, _Mapping]]] = ..., description: _Optional[str] = ...) -> None: ...

class ListConnectorTypesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListConnectorTypesResponse(_message.Message):
    __slots__ = ("connector_types",)
    CONNECTOR_TYPES_FIELD_NUMBER: _ClassVar[int]
    connector_types: _containers.RepeatedCompositeFieldContainer[ConnectorType]
    def __init__(self, connector_types: _Optional[_Iterable[_Union[ConnectorType, _Mapping]]] = ...) -> None: ...
