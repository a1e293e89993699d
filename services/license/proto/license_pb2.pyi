from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClearKeyRequest(_message.Message):
    __slots__ = ("token", "kids", "content_id", "client_ip")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    KIDS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    token: str
    kids: _containers.RepeatedScalarFieldContainer[bytes]
    content_id: str
    client_ip: str
    def __init__(self, token: _Optional[str] = ..., kids: _Optional[_Iterable[bytes]] = ..., content_id: _Optional[str] = ..., client_ip: _Optional[str] = ...) -> None: ...

class ContentKey(_message.Message):
    __slots__ = ("kid", "key", "period", "start_ms", "end_ms")
    KID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    kid: bytes
    key: bytes
    period: int
    start_ms: int
    end_ms: int
    def __init__(self, kid: _Optional[bytes] = ..., key: _Optional[bytes] = ..., period: _Optional[int] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ...) -> None: ...

class ClearKeyLicense(_message.Message):
    __slots__ = ("license_id", "content_id", "keys", "clearkey_json")
    LICENSE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    CLEARKEY_JSON_FIELD_NUMBER: _ClassVar[int]
    license_id: str
    content_id: str
    keys: _containers.RepeatedCompositeFieldContainer[ContentKey]
    clearkey_json: bytes
    def __init__(self, license_id: _Optional[str] = ..., content_id: _Optional[str] = ..., keys: _Optional[_Iterable[_Union[ContentKey, _Mapping]]] = ..., clearkey_json: _Optional[bytes] = ...) -> None: ...

class ContentKeyRequest(_message.Message):
    __slots__ = ("token", "content_id", "period", "client_ip")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONTENT_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    token: str
    content_id: str
    period: int
    client_ip: str
    def __init__(self, token: _Optional[str] = ..., content_id: _Optional[str] = ..., period: _Optional[int] = ..., client_ip: _Optional[str] = ...) -> None: ...

class ContentKeyResponse(_message.Message):
    __slots__ = ("license_id", "content_id", "key")
    LICENSE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    license_id: str
    content_id: str
    key: ContentKey
    def __init__(self, license_id: _Optional[str] = ..., content_id: _Optional[str] = ..., key: _Optional[_Union[ContentKey, _Mapping]] = ...) -> None: ...
