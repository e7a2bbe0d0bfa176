"""Channel setup shared by both clients: the bearer token on every call, and gRPC's own retries
(with exponential backoff) of calls that failed with UNAVAILABLE."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Tuple, Union

import grpc
import grpc.aio

_SERVICES = ("backflow.v1.ConnectionService", "backflow.v1.SyncService", "backflow.v1.RunService")

# gRPC retries a call only while no response has arrived, so a retried call was never
# processed twice by a handler that answered.
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": s} for s in _SERVICES],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)

OPTIONS: List[Tuple[str, Any]] = [
    ("grpc.enable_retries", 1),
    ("grpc.service_config", _SERVICE_CONFIG),
]


Metadata = Tuple[Tuple[str, Union[str, bytes]], ...]


def _with_token(metadata: Optional[Iterable[Tuple[str, Union[str, bytes]]]], token: str) -> Metadata:
    return tuple(metadata or ()) + (("authorization", f"Bearer {token}"),)


class _Details(grpc.ClientCallDetails):
    def __init__(self, details: grpc.ClientCallDetails, token: str) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = _with_token(details.metadata, token)
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class TokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer TOKEN` to every call of a blocking channel."""

    def __init__(self, token: str) -> None:
        self._token = token

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return continuation(_Details(client_call_details, self._token), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return continuation(_Details(client_call_details, self._token), request)


def _aio_details(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        grpc.aio.Metadata(*_with_token(details.metadata, token)),
        details.credentials,
        details.wait_for_ready,
    )


class AioUnaryTokenInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds `authorization: Bearer TOKEN` to every unary call of an asyncio channel."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(
        self,
        continuation: Callable[..., Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(_aio_details(client_call_details, self._token), request)


class AioStreamTokenInterceptor(grpc.aio.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer TOKEN` to every server-streaming call of an asyncio channel."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(
        self,
        continuation: Callable[..., Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(_aio_details(client_call_details, self._token), request)


#: The environment variable naming a PEM file of CA certificates that an https:// address
#: trusts besides the default roots; the Backflow CLI, workers and every client read it.
CA_CERT_ENV = "BACKFLOW_CA_CERT"

#: The root certificates grpcio uses when it is given none.
_GRPC_ROOTS = Path(grpc.__file__).parent / "_cython" / "_credentials" / "roots.pem"


def _env_roots() -> Optional[bytes]:
    """grpcio's default roots plus the CA certificates of the file BACKFLOW_CA_CERT names, or
    None when it is unset or empty (grpcio then uses its defaults)."""
    path = os.environ.get(CA_CERT_ENV)
    if not path:
        return None
    try:
        extra = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"{CA_CERT_ENV}={path}: cannot read the CA certificates: {e}") from None
    if b"-----BEGIN CERTIFICATE-----" not in extra:
        raise ValueError(f"{CA_CERT_ENV}={path} holds no PEM certificate")
    defaults = _GRPC_ROOTS.read_bytes() if _GRPC_ROOTS.is_file() else b""
    return defaults + b"\n" + extra


def credentials(tls: bool, root_certificates: Optional[bytes]) -> Optional[grpc.ChannelCredentials]:
    """TLS credentials, or None for plaintext HTTP/2. `root_certificates` replaces the default
    roots, as in grpcio; without it, an https:// address also trusts BACKFLOW_CA_CERT's CA."""
    if not tls and root_certificates is None:
        return None
    if root_certificates is None:
        root_certificates = _env_roots()
    return grpc.ssl_channel_credentials(root_certificates=root_certificates)
