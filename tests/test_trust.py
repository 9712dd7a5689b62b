"""trust.py: what ``tls=True`` and ``tls={"ca": "system"}`` trust, and that
each distinct default context is built once per process. The server is a
gws server on loopback presenting a trustme certificate; its CA is in no
bundle until a test puts it there with SSL_CERT_FILE / SSL_CERT_DIR."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess

import gevent.ssl
import pytest

import gws
from gws import trust

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    trust.cached_context.cache_clear()


def verified(url, **options):
    res, read, write = gws.connect(url, **options)
    if not res:
        return read
    write("hi")
    assert read().payload == "hi"
    write.close()
    return res


def test_ssl_cert_file_makes_tls_true_verify(tls_echo, tls_ca_file, monkeypatch):
    url = f"wss://localhost:{tls_echo.port}/"
    err = verified(url)
    assert isinstance(err, str) and err.startswith("TLS certificate verification failed")
    monkeypatch.setenv("SSL_CERT_FILE", tls_ca_file)
    res = verified(url)
    assert isinstance(res, gws.Response), res
    # certifi's bundle is still trusted alongside it
    ctx = res.socket.context
    assert ctx.cert_store_stats()["x509_ca"] > 100


def test_ssl_cert_dir_makes_tls_true_verify(tls_echo, tls_ca_file, tmp_path, monkeypatch):
    if not shutil.which("openssl"):
        pytest.skip("openssl command not available to name the hashed CA file")
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", tls_ca_file],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(tls_ca_file, certs / f"{subject_hash}.0")
    url = f"wss://localhost:{tls_echo.port}/"
    monkeypatch.setenv("SSL_CERT_DIR", str(certs))
    assert isinstance(verified(url), gws.Response)
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))  # no CA there
    assert isinstance(verified(url), str)


def test_bad_ssl_cert_file_is_a_clear_error(tls_echo, tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    res, err, _ = gws.connect(f"wss://localhost:{tls_echo.port}/")
    assert res is None and err.startswith("SSL_CERT_FILE / SSL_CERT_DIR cannot be loaded")


def test_default_contexts_built_once_per_setting(tls_echo, tls_ca_file, monkeypatch):
    loads = []
    real = gevent.ssl.SSLContext.load_verify_locations

    def counting(self, *args, **kwargs):
        loads.append(kwargs.get("cafile") or args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(gevent.ssl.SSLContext, "load_verify_locations", counting)
    monkeypatch.setenv("SSL_CERT_FILE", tls_ca_file)
    url = f"wss://localhost:{tls_echo.port}/"
    contexts = [verified(url).socket.context for _ in range(3)]
    assert contexts[0] is contexts[1] is contexts[2]
    assert len(loads) == 2  # certifi's bundle, then SSL_CERT_FILE: once
    assert trust.default_context() is contexts[0]  # what an https:// proxy gets
    monkeypatch.setenv("SSL_CERT_DIR", "/nonexistent-but-harmless")
    other = verified(url).socket.context
    assert other is not contexts[0]  # another setting, another context


def test_system_store(tls_echo, tls_ca_file, monkeypatch):
    url = f"wss://localhost:{tls_echo.port}/"
    # the trustme CA is in no system store
    err = verified(url, tls={"ca": "system"})
    assert isinstance(err, str) and err.startswith("TLS certificate verification failed")
    ctx, _ = trust.tls_context({"ca": "system"})
    if os.path.exists(ssl.get_default_verify_paths().openssl_cafile):
        assert ctx.cert_store_stats()["x509_ca"] > 0  # the OS bundle was loaded
    # OpenSSL's default locations honour SSL_CERT_FILE: a corporate CA added there
    monkeypatch.setenv("SSL_CERT_FILE", tls_ca_file)
    assert isinstance(verified(url, tls={"ca": "system"}), gws.Response)


def test_tls_option_errors():
    for bad, needle in (
        ({"ca": 5}, "system"),
        ({"nope": 1}, "unknown tls option"),
        ("yes", "tls must be"),
    ):
        res, err, _ = gws.connect("wss://localhost:1/", tls=bad)
        assert res is None and needle in err


def test_truststore_context_verifies_through_tls_over_bio(
    tls_echo, tls_ca, tls_ca_file, make_server, monkeypatch
):
    """A truststore.SSLContext verifies in its SSLObject, which gevent's
    socket wrapping would skip: gws runs it over memory BIOs instead, so
    its checks run (on Linux truststore reads OpenSSL's default locations,
    hence SSL_CERT_FILE)."""
    truststore = pytest.importorskip("truststore")
    url = f"wss://localhost:{tls_echo.port}/"
    ctx = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    err = verified(url, tls=ctx)
    assert isinstance(err, str) and "certificate" in err.lower()
    monkeypatch.setenv("SSL_CERT_FILE", tls_ca_file)
    ctx = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    res = verified(url, tls=ctx)
    assert isinstance(res, gws.Response), res
    assert type(res.socket).__name__ == "TLSOverSocket"
    # and the hostname is checked: a certificate for another name is refused
    other = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_ca.issue_cert("other.example").configure_cert(other)
    server = make_server(gws.echo, ssl_context=other)
    err = verified(f"wss://localhost:{server.port}/", tls=ctx)
    assert isinstance(err, str) and "certificate" in err.lower()
