"""A broker as a fleet runs it: Redis with a password, over TLS (``rediss://``), set only through
FARM_BROKER_URL; the password never shows in what the farm prints or logs."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from farm.core.errors import ServiceUnavailableError
from farm.core.redisserver import redis_server_binary, wait_for_redis
from farm.samples import write_mlp_onnx
from tests.conftest import Farm, farm_environment, free_port
from tests.integration.test_infer import convert

pytestmark = pytest.mark.integration
PASSWORD = "broker-test-secret"


def _key_usage(cert_sign: bool) -> Any:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
        decipher_only=False,
    )  # fmt: skip


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1: (ca, cert, key) as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder(issuer_name=name("farm test CA"), subject_name=name("farm test CA"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder(issuer_name=ca.subject, subject_name=name("127.0.0.1"))
        .public_key(server_key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[str]:
    ca, cert, key = _certificates(tmp_path)
    port = free_port()
    log = tmp_path / "redis-tls.log"
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
            "--tls-auth-clients", "no", "--requirepass", PASSWORD, "--save", "", "--dir", str(tmp_path),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    try:
        wait_for_redis(url, process=process)
    except ServiceUnavailableError:
        if process.poll() is not None:
            pytest.skip(f"this redis-server has no TLS support: {log.read_text()[-300:]}")
        process.kill()
        pytest.fail(f"TLS redis-server did not start: {log.read_text()[-2000:]}")
    yield url
    process.terminate()
    process.wait(10)


def test_a_farm_runs_over_tls_with_a_password_and_never_shows_it(
    tls_broker: str, tmp_path: Path, sqlite_url: str
) -> None:
    farm = Farm(farm_environment(tmp_path / "home", tls_broker, sqlite_url))
    try:
        worker = farm.start_worker("cpu")
        job_id = convert(farm, write_mlp_onnx(tmp_path / "mlp.onnx"))
        shown = [farm.cli("status", job_id), farm.cli("workers"), farm.cli("up", "--status")]
        assert all(result.returncode == 0 for result in shown), [r.stderr for r in shown]
        assert "cpu-" in shown[1].stdout and "rediss://:***@127.0.0.1" in shown[2].stdout
    finally:
        farm.stop_workers()
    worker_log = (Path(farm.env["FARM_HOME"]) / "worker-0.log").read_text()
    assert worker.returncode is not None and "rediss://" in worker_log  # Celery's banner names it
    for text in [worker_log, *(r.stdout + r.stderr for r in shown)]:
        assert PASSWORD not in text
