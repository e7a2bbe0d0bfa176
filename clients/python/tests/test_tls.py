"""An https:// control plane whose certificate a private CA issued (made by the repository's
scripts/self-signed-ca.sh): refused with the default roots alone, trusted through
`root_certificates` or the BACKFLOW_CA_CERT variable the CLI and every client read."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from backflow_client import Client, NotFoundError, UnavailableError
from conftest import ROOT, standalone


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    certs = tmp_path_factory.mktemp("tls")
    subprocess.run(["bash", str(ROOT / "scripts" / "self-signed-ca.sh"), str(certs)], check=True)
    env = {
        "BACKFLOW__CONTROL_PLANE__TLS_CERT": str(certs / "server.pem"),
        "BACKFLOW__CONTROL_PLANE__TLS_KEY": str(certs / "server-key.pem"),
        "BACKFLOW_CA_CERT": str(certs / "ca.pem"),
    }
    with standalone(tmp_path_factory.mktemp("standalone-tls"), env) as address:
        assert address.startswith("https://"), address
        yield address, certs / "ca.pem"


def test_root_certificates_trust_the_private_ca(tls_server, monkeypatch):
    address, ca = tls_server
    monkeypatch.delenv("BACKFLOW_CA_CERT", raising=False)
    with Client(address, root_certificates=ca.read_bytes()) as bf:
        # An answer from the server, over TLS.
        with pytest.raises(NotFoundError):
            bf.get_sync("no-such-sync")


def test_the_default_roots_refuse_the_private_ca(tls_server, monkeypatch):
    address, _ = tls_server
    monkeypatch.delenv("BACKFLOW_CA_CERT", raising=False)
    with Client(address) as bf:
        with pytest.raises(UnavailableError):
            bf.get_sync("no-such-sync")


def test_backflow_ca_cert_trusts_the_private_ca(tls_server, monkeypatch):
    address, ca = tls_server
    monkeypatch.setenv("BACKFLOW_CA_CERT", str(ca))
    with Client(address) as bf:
        with pytest.raises(NotFoundError):
            bf.get_sync("no-such-sync")


def test_an_unusable_backflow_ca_cert_is_a_clear_error(tls_server, tmp_path, monkeypatch):
    address, _ = tls_server
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    monkeypatch.setenv("BACKFLOW_CA_CERT", str(not_pem))
    with pytest.raises(ValueError, match="holds no PEM certificate"):
        Client(address)
