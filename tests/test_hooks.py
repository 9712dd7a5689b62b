"""gws/hooks.py, sans-I/O: responses byte for byte, origins, Basic auth, subprotocols.

The same functions run inside gws.accept/gws.serve and the WSGI handler;
tests of them over real sockets live in tests/test_server.py.
"""

from __future__ import annotations

import ast
import base64
import logging
import os
from http import HTTPStatus

import pytest

import gws
from gws.errors import HandshakeError
from gws.hooks import (
    HTTPResponse,
    Request,
    basic_auth,
    basic_credentials,
    check_hook_options,
    check_origin,
    pick_subprotocol,
    render_response,
    response_status,
    run_hooks,
)


def request(*headers, path="/", method="GET"):
    return Request(path, list(headers), None, None, ("127.0.0.1", 1234), method)


def basic(user, password):
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return ("Authorization", f"Basic {token}")


# -- the module itself -------------------------------------------------------------------


def test_hooks_module_is_sans_io():
    """hooks.py imports only the stdlib and gws's own sans-I/O modules."""
    path = os.path.join(os.path.dirname(gws.__file__), "hooks.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(("." * node.level) + (node.module or ""))
    assert imported <= {
        "__future__",
        "base64",
        "binascii",
        "hmac",
        "logging",
        "http",
        "typing",
        ".errors",
        ".handshake",
    }, imported


def test_request_is_the_servers_request_with_method_last():
    assert gws.Request is Request
    assert gws.server.Request is Request
    assert Request._fields == ("path", "headers", "subprotocol", "extensions", "address", "method")
    old_style = Request("/p", [("Origin", "x")], "chat", None)
    assert old_style.address is None and old_style.method == "GET"
    assert old_style.header("origin") == "x"
    assert old_style.header("missing") is None


def test_public_names_exported():
    for name in ("HTTPResponse", "basic_auth"):
        assert getattr(gws, name) is getattr(gws.hooks, name)
        assert name in gws.__all__


# -- render_response ---------------------------------------------------------------------


def test_render_response_plain_text_body():
    assert render_response(HTTPResponse(200, [], b"OK\n")) == (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 3\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"OK\n"
    )


def test_render_response_keeps_headers_in_order_and_their_content_type():
    response = HTTPResponse(
        403,
        [("X-One", "1"), ("Content-Type", "application/json"), ("X-Two", "2")],
        '{"error": "forbidden"}',
    )
    assert render_response(response) == (
        b"HTTP/1.1 403 Forbidden\r\n"
        b"X-One: 1\r\n"
        b"Content-Type: application/json\r\n"
        b"X-Two: 2\r\n"
        b"Content-Length: 22\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b'{"error": "forbidden"}'
    )


def test_render_response_empty_body_has_no_content_type():
    assert render_response(HTTPResponse(404)) == (
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )


def test_render_response_replaces_framing_headers():
    response = HTTPResponse(
        200,
        [("Content-Length", "999"), ("Connection", "keep-alive"), ("Transfer-Encoding", "chunked")],
        b"abc",
    )
    assert render_response(response) == (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 3\r\n"
        b"Connection: close\r\n\r\nabc"
    )


def test_render_response_str_body_is_utf8():
    raw = render_response(HTTPResponse(200, [], "h\u00e9"))
    assert raw.endswith(b"Content-Length: 3\r\nConnection: close\r\n\r\nh\xc3\xa9")


def test_render_response_unregistered_status_has_an_empty_reason():
    assert render_response(HTTPResponse(599)).startswith(b"HTTP/1.1 599 \r\n")


def test_render_response_204_and_304_have_no_content_length():
    assert render_response(HTTPResponse(204)) == (
        b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    )
    assert render_response(HTTPResponse(304, [("ETag", '"x"')])) == (
        b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\nConnection: close\r\n\r\n'
    )
    with pytest.raises(ValueError, match="204"):
        render_response(HTTPResponse(204, [], b"body"))


def test_render_response_head_has_the_length_but_no_body():
    assert render_response(HTTPResponse(200, [], b"OK"), method="HEAD") == (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 2\r\n"
        b"Connection: close\r\n\r\n"
    )


def test_render_response_accepts_a_tuple_and_a_dict_of_headers():
    assert render_response((401, {"WWW-Authenticate": "Basic"}, "no")) == (
        b"HTTP/1.1 401 Unauthorized\r\n"
        b"WWW-Authenticate: Basic\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 2\r\n"
        b"Connection: close\r\n\r\nno"
    )
    assert render_response((HTTPStatus.GONE,)).startswith(b"HTTP/1.1 410 Gone\r\n")


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Evil", "a\r\nSet-Cookie: x=1")],
        [("X-Evil", "a\nb")],
        [("X-Nul", "a\x00")],
        [("Bad Name", "v")],
        [("", "v")],
        [("X-Wide", "\u20ac")],
    ],
)
def test_render_response_refuses_header_injection(headers):
    with pytest.raises(ValueError):
        render_response(HTTPResponse(200, headers))


@pytest.mark.parametrize(
    "bad",
    [
        HTTPResponse(101),
        HTTPResponse(199),
        HTTPResponse(600),
        HTTPResponse(True),
        HTTPResponse("200"),  # type: ignore[arg-type]
        HTTPResponse(200, [("only-name",)]),  # type: ignore[list-item]
        HTTPResponse(200, [], 42),  # type: ignore[arg-type]
        (),
        (200, [], b"", "extra"),
    ],
)
def test_render_response_refuses_what_is_no_final_response(bad):
    with pytest.raises(ValueError):
        render_response(bad)


def test_response_status():
    assert response_status(401) == "401 Unauthorized"
    assert response_status(599) == "599"


# -- check_origin ------------------------------------------------------------------------


def test_check_origin_none_allows_everything():
    assert check_origin(request(), None) is None
    assert check_origin(request(("Origin", "https://evil.example")), None) is None


def test_check_origin_allow_list():
    origins = ["https://app.example", "http://localhost:8000"]
    assert check_origin(request(("Origin", "https://app.example")), origins) is None
    assert check_origin(request(("origin", "http://localhost:8000")), origins) is None
    refused = check_origin(request(("Origin", "https://evil.example")), origins)
    assert refused is not None and refused.status == 403
    assert refused.body == b"Forbidden: origin not allowed\n"
    # exact match: another scheme, port or a suffix is another origin
    for other in ("http://app.example", "https://app.example:443", "https://app.example.evil"):
        assert check_origin(request(("Origin", other)), origins).status == 403


def test_check_origin_missing_header():
    refused = check_origin(request(), ["https://app.example"])
    assert refused is not None and refused.status == 403
    assert b"missing Origin" in refused.body
    assert check_origin(request(), ["https://app.example", None]) is None
    assert check_origin(request(("Origin", "https://x.example")), [None]).status == 403


def test_check_origin_refuses_several_origin_headers():
    origins = ["https://a.example", "https://b.example"]
    twice = request(("Origin", "https://a.example"), ("Origin", "https://b.example"))
    assert check_origin(twice, origins).status == 403


def test_check_origin_takes_any_iterable():
    assert check_origin(request(("Origin", "https://a.example")), ("https://a.example",)) is None
    assert check_origin(request(("Origin", "https://a.example")), {"https://a.example"}) is None
    origins = (o for o in ["https://a.example"])
    assert check_origin(request(("Origin", "https://a.example")), origins) is None


# -- run_hooks ---------------------------------------------------------------------------


def test_run_hooks_without_hooks_goes_on():
    assert run_hooks(request()) is None


def test_run_hooks_origin_check_runs_before_process_request():
    called = []

    def process_request(req):
        called.append(req)
        return None

    refused = run_hooks(
        request(("Origin", "https://evil.example")),
        process_request=process_request,
        origins=["https://app.example"],
    )
    assert refused is not None and refused.status == 403
    assert called == []
    req = request(("Origin", "https://app.example"))
    assert run_hooks(req, process_request=process_request, origins=["https://app.example"]) is None
    assert called == [req]


def test_run_hooks_normalises_what_process_request_returns():
    def health(req):
        if req.path == "/health":
            return 200, [("X-Health", "ok")], "OK\n"
        if req.path == "/gone":
            return (410,)
        return None

    assert run_hooks(request(path="/health"), process_request=health) == HTTPResponse(
        200, [("X-Health", "ok")], b"OK\n"
    )
    assert run_hooks(request(path="/gone"), process_request=health) == HTTPResponse(410, [], b"")
    assert run_hooks(request(path="/ws"), process_request=health) is None


@pytest.mark.parametrize(
    "hook",
    [
        lambda req: 1 / 0,
        lambda req: HTTPResponse(101),
        lambda req: "200 OK",
        lambda req: HTTPResponse(200, [("X", "a\r\nb")]),
    ],
    ids=["raises", "101", "str", "header-injection"],
)
def test_run_hooks_broken_hook_answers_500_and_logs(hook, caplog):
    req = request(path="/ws?token=s3cret")
    with caplog.at_level(logging.ERROR, logger="gws"):
        answer = run_hooks(req, process_request=hook)
    assert answer == HTTPResponse(500, [], b"Internal Server Error\n")
    records = [r for r in caplog.records if r.name == "gws"]
    assert len(records) == 1 and records[0].exc_info
    assert "/ws" in records[0].getMessage()
    assert "s3cret" not in records[0].getMessage()


def test_check_hook_options():
    check_hook_options(None, None, None)
    check_hook_options(lambda r: None, ["https://a.example", None], lambda r, o: None)
    check_hook_options(origins=())
    for bad in (
        {"process_request": "not callable"},
        {"select_subprotocol": 42},
        {"origins": "https://a.example"},
        {"origins": b"https://a.example"},
        {"origins": 42},
        {"origins": ["https://a.example", 42]},
    ):
        with pytest.raises(ValueError):
            check_hook_options(**bad)


# -- pick_subprotocol --------------------------------------------------------------------


def test_pick_subprotocol_default_is_the_clients_first_supported():
    req = request()
    assert pick_subprotocol(req, ["x", "chat", "superchat"], ["superchat", "chat"]) == "chat"
    assert pick_subprotocol(req, ["x"], ["chat"]) is None
    assert pick_subprotocol(req, [], ["chat"]) is None
    assert pick_subprotocol(req, ["chat"], []) is None


def test_pick_subprotocol_select_hook_decides():
    seen = []

    def select(req, offered):
        seen.append((req, offered))
        return offered[-1] if offered else None

    req = request(path="/v2")
    assert pick_subprotocol(req, ["a", "b"], ["a"], select) == "b"
    assert seen == [(req, ["a", "b"])]
    assert pick_subprotocol(req, ["a", "b"], ["a"], lambda r, o: None) is None
    assert pick_subprotocol(req, [], [], select) is None


def test_pick_subprotocol_select_hook_gets_a_copy():
    offered = ["a", "b"]
    pick_subprotocol(request(), offered, [], lambda r, o: o.clear())
    assert offered == ["a", "b"]


@pytest.mark.parametrize("returned", ["c", 42, b"a"])
def test_pick_subprotocol_not_offered_is_a_500(returned):
    with pytest.raises(HandshakeError) as info:
        pick_subprotocol(request(), ["a", "b"], [], lambda r, o: returned)
    assert info.value.status == 500
    assert "did not offer" in str(info.value)


def test_pick_subprotocol_hook_that_raises_is_a_500(caplog):
    def select(req, offered):
        raise KeyError("boom")

    with caplog.at_level(logging.ERROR, logger="gws"), pytest.raises(HandshakeError) as info:
        pick_subprotocol(request(), ["a"], [], select)
    assert info.value.status == 500
    assert isinstance(info.value.__cause__, KeyError)
    assert any(r.exc_info for r in caplog.records if r.name == "gws")


# -- basic_auth --------------------------------------------------------------------------

CHALLENGE = ("WWW-Authenticate", 'Basic realm="gws", charset="UTF-8"')


def test_basic_auth_accepts_good_credentials():
    auth = basic_auth({"alice": "wonderland", "b\u00f6b": "p\u00e4ss:word"})
    assert auth(request(basic("alice", "wonderland"))) is None
    assert auth(request(basic("b\u00f6b", "p\u00e4ss:word"))) is None  # UTF-8, ":" in password


def test_basic_auth_missing_credentials_401_with_challenge():
    auth = basic_auth({"alice": "wonderland"})
    refused = auth(request())
    assert refused == HTTPResponse(401, [CHALLENGE], b"Unauthorized: missing credentials\n")
    assert render_response(refused) == (
        b"HTTP/1.1 401 Unauthorized\r\n"
        b'WWW-Authenticate: Basic realm="gws", charset="UTF-8"\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 34\r\n"
        b"Connection: close\r\n\r\n"
        b"Unauthorized: missing credentials\n"
    )


@pytest.mark.parametrize(
    "header",
    [
        basic("alice", "wrong"),
        basic("alice", "wonderland "),
        basic("alice", ""),
        basic("mallory", "wonderland"),
        basic("", ""),
    ],
)
def test_basic_auth_wrong_credentials_401(header):
    auth = basic_auth({"alice": "wonderland"})
    refused = auth(request(header))
    assert refused is not None and refused.status == 401
    assert refused.headers == [CHALLENGE]
    assert b"invalid credentials" in refused.body
    assert b"wonderland" not in render_response(refused)


@pytest.mark.parametrize(
    "value",
    [
        "Bearer abc",
        "Basic",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),  # not UTF-8
        "Basic YWxpY2U6d29uZGVybGFuZA",  # missing padding
    ],
)
def test_basic_auth_malformed_header_is_missing_credentials(value):
    auth = basic_auth({"alice": "wonderland"})
    req = request(("Authorization", value))
    assert basic_credentials(req) is None
    assert auth(req).status == 401


def test_basic_auth_two_authorization_headers_refused():
    auth = basic_auth({"alice": "wonderland"})
    req = request(basic("alice", "wonderland"), basic("alice", "wonderland"))
    assert auth(req).status == 401


def test_basic_auth_scheme_is_case_insensitive():
    auth = basic_auth({"alice": "wonderland"})
    token = base64.b64encode(b"alice:wonderland").decode()
    assert auth(request(("authorization", f"bAsIc {token}"))) is None


def test_basic_auth_with_a_callable_and_a_realm():
    calls = []

    def check(user, password):
        calls.append((user, password))
        return user == "svc" and password.startswith("tok-")

    auth = basic_auth(check, realm="private area")
    assert auth(request(basic("svc", "tok-1"))) is None
    refused = auth(request(basic("svc", "nope")))
    assert refused.status == 401
    assert refused.headers == [("WWW-Authenticate", 'Basic realm="private area", charset="UTF-8"')]
    assert calls == [("svc", "tok-1"), ("svc", "nope")]


def test_basic_credentials_gives_the_user_to_a_handler():
    assert basic_credentials(request(basic("alice", "a:b"))) == ("alice", "a:b")
    assert basic_credentials(request()) is None


@pytest.mark.parametrize(
    ("credentials", "realm"),
    [
        ("alice:wonderland", "gws"),
        ({"alice": 1}, "gws"),
        ({"alice": "x"}, 'say "hi"'),
        ({"alice": "x"}, "a\r\nSet-Cookie: x"),
        ({"alice": "x"}, None),
    ],
)
def test_basic_auth_bad_configuration(credentials, realm):
    with pytest.raises(ValueError):
        basic_auth(credentials, realm=realm)


def test_basic_auth_through_run_hooks_with_origins():
    auth = basic_auth({"alice": "wonderland"})
    origins = ["https://app.example"]
    good = request(("Origin", "https://app.example"), basic("alice", "wonderland"))
    assert run_hooks(good, process_request=auth, origins=origins) is None
    no_auth = request(("Origin", "https://app.example"))
    assert run_hooks(no_auth, process_request=auth, origins=origins).status == 401
    bad_origin = request(("Origin", "https://evil.example"), basic("alice", "wonderland"))
    assert run_hooks(bad_origin, process_request=auth, origins=origins).status == 403
