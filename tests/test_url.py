"""url.py: parse_url(), errors as values."""

from __future__ import annotations

import pytest

import gws
from gws.url import Url, parse_url, split_url


def ok(url: str) -> Url:
    parsed, error = parse_url(url)
    assert error is None, error
    assert isinstance(parsed, Url)
    return parsed


def bad(url) -> str:
    parsed, error = parse_url(url)
    assert parsed is None
    assert isinstance(error, str) and error
    with pytest.raises(gws.InvalidURL):
        split_url(url)
    return error


def test_seed_example():
    url, err = gws.parseUrl("ws://ex.example.org/path/name")
    assert err is None
    # string.format("host: %s\nport: %d\npathname: %s\nWSS?: %s", ...) in the Lua original
    text = f"host: {url.host}\nport: {url.port:d}\npathname: {url.pathname}\nWSS?: {url.tls}"
    assert text == "host: ex.example.org\nport: 80\npathname: /path/name\nWSS?: False"


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "pathname"),
    [
        ("ws://example.org", "example.org", 80, False, "/"),
        ("ws://example.org/", "example.org", 80, False, "/"),
        ("wss://example.org", "example.org", 443, True, "/"),
        ("wss://example.org/feed", "example.org", 443, True, "/feed"),
        ("ws://example.org:8080/x", "example.org", 8080, False, "/x"),
        ("wss://example.org:80/", "example.org", 80, True, "/"),
        ("ws://127.0.0.1:1/", "127.0.0.1", 1, False, "/"),
        ("ws://h:65535", "h", 65535, False, "/"),
        ("WS://Example.ORG/Path", "Example.ORG", 80, False, "/Path"),
        ("WSS://h/", "h", 443, True, "/"),
        ("ws://[::1]/", "::1", 80, False, "/"),
        ("ws://[::1]:8080/chat", "::1", 8080, False, "/chat"),
        ("wss://[2001:db8::7]", "2001:db8::7", 443, True, "/"),
        ("ws://h?x=1", "h", 80, False, "/?x=1"),
        ("ws://h:81?x=1&y=2", "h", 81, False, "/?x=1&y=2"),
        ("ws://h/p/q?x=1", "h", 80, False, "/p/q?x=1"),
        ("ws://h/p?next=/a/b", "h", 80, False, "/p?next=/a/b"),
        ("ws://h/%20x", "h", 80, False, "/%20x"),
    ],
)
def test_valid_urls(url, host, port, tls, pathname):
    parsed = ok(url)
    assert (parsed.host, parsed.port, parsed.tls, parsed.pathname) == (host, port, tls, pathname)
    assert parsed.username is None and parsed.password is None


def test_netloc_for_the_host_header():
    assert ok("ws://h/").netloc == "h"
    assert ok("ws://h:80/").netloc == "h"
    assert ok("ws://h:443/").netloc == "h:443"
    assert ok("wss://h:443/").netloc == "h"
    assert ok("ws://[::1]:9/").netloc == "[::1]:9"
    assert ok("wss://[::1]/").netloc == "[::1]"


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://example.org/", "scheme"),
        ("https://example.org/", "scheme"),
        ("ftp://example.org/", "scheme"),
        ("example.org/path", "ws://"),
        ("//example.org/", "ws://"),
        ("ws:example.org", "ws://"),
        ("", "ws://"),
        ("ws://h/#frag", "fragment"),
        ("ws://h#", "fragment"),
        ("ws://", "host"),
        ("ws:///path", "host"),
        ("ws://:8080/", "host"),
        ("ws://?x=1", "host"),
        ("ws://h:abc/", "port"),
        ("ws://h:/", "port"),
        ("ws://h:0/", "port"),
        ("ws://h:65536/", "port"),
        ("ws://h:99999999999999999999/", "port"),
        ("ws://h:-1/", "port"),
        ("ws://h:+80/", "port"),
        ("ws://h:8 0/", "whitespace"),
        ("ws://h:８０/", "port"),  # full-width digits
        ("ws://h:80:81/", "port"),
        (" ws://h/", "whitespace"),
        ("ws://h/ ", "whitespace"),
        ("ws://h /", "whitespace"),
        ("ws://h/\n", "whitespace"),
        ("ws://h/\tx", "whitespace"),
        ("ws://h/\x00", "control"),
        ("ws://[::1/", "IPv6"),
        ("ws://[::1]x/", "IPv6"),
        ("ws://[example.org]/", "IPv6"),
        ("ws://::1/", "host"),
        ("ws://h]/", "host"),
    ],
)
def test_invalid_urls(url, needle):
    error = bad(url)
    assert needle.lower() in error.lower()


@pytest.mark.parametrize("value", [None, b"ws://h/", 42, ["ws://h/"]])
def test_not_a_string(value):
    error = bad(value)
    assert "str" in error


def test_invalid_url_is_also_a_value_error():
    with pytest.raises(ValueError):
        split_url("http://h/")


class TestCredentials:
    def test_credentials_parsed_but_never_shown(self):
        url = ok("wss://alice:s3cr3t@example.org/feed")
        assert (url.host, url.port, url.pathname) == ("example.org", 443, "/feed")
        assert (url.username, url.password) == ("alice", "s3cr3t")
        assert "s3cr3t" not in repr(url) and "alice" not in repr(url)
        assert "s3cr3t" not in str(url)

    def test_user_without_password(self):
        url = ok("ws://bob@h:81/")
        assert (url.username, url.password, url.port) == ("bob", None, 81)

    def test_at_sign_in_password(self):
        url = ok("ws://bob:p@ss@h/")
        assert (url.username, url.password, url.host) == ("bob", "p@ss", "h")

    @pytest.mark.parametrize(
        "url",
        [
            "http://alice:s3cr3t@example.org/",
            "ws://alice:s3cr3t@example.org:99999/",
            "ws://alice:s3cr3t@example.org/#frag",
            "ws://alice:s3cr3t@/",
            "ws://alice:s3cr3t@[::1/",
            "alice:s3cr3t@example.org/path",
            "//alice:s3cr3t@example.org/path",
            "ws:alice:s3cr3t@example.org/path",
            "ws://alice:s3cr3t@example.org:8o/",
            "ws://alice:p@ss:s3cr3t@example.org:8o/",
        ],
    )
    def test_credentials_never_in_errors(self, url):
        error = bad(url)
        assert "s3cr3t" not in error
        assert "p@ss" not in error
