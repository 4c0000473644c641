"""The ``agentos-mw`` command through its real entry point, in subprocesses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jwt
import pytest

from agentos_mw import JWTMiddleware
from tests.driver import call, http_scope

SECRET = "cli-test-secret-0123456789abcdef0123456789"


def agentos_mw_cmd() -> list[str]:
    script = Path(sys.executable).parent / "agentos-mw"
    return [str(script)] if script.exists() else [sys.executable, "-m", "agentos_mw"]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*agentos_mw_cmd(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def mint(*args: str) -> str:
    result = cli("token", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_help_everywhere() -> None:
    for command in ([], ["demo"], ["token"], ["keys"], ["check-token"]):
        result = cli(*command, "--help")
        assert result.returncode == 0
        assert "usage: agentos-mw" in result.stdout


def test_hs256_token_round_trip_and_middleware_accepts_it() -> None:
    token = mint(
        "--sub",
        "alice",
        "--scopes",
        "agents:read agents:a1:run",
        "--secret",
        SECRET,
        "--claim",
        'tier="gold"',
        "--claim",
        "n=3",
    )
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["scopes"] == ["agents:read", "agents:a1:run"]
    assert claims["tier"] == "gold" and claims["n"] == 3
    assert 3590 <= claims["exp"] - claims["iat"] <= 3600

    checked = cli("check-token", token, "--secret", SECRET)
    assert checked.returncode == 0, checked.stdout
    assert "VALID" in checked.stdout and "agents:a1:run" in checked.stdout
    assert SECRET not in checked.stdout + checked.stderr


@pytest.mark.anyio
async def test_minted_token_passes_the_middleware() -> None:
    token = mint("--sub", "bob", "--secret", SECRET, "--ttl", "5m")
    seen: dict[str, object] = {}

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        seen.update(scope["state"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = JWTMiddleware(app, verification_keys=[SECRET], algorithm="HS256")
    result = await call(mw, http_scope("GET", "/agents", [("authorization", f"Bearer {token}")]))
    assert result.status == 204
    assert seen["user_id"] == "bob"


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_keys_then_token_then_check(tmp_path: Path, alg: str) -> None:
    result = cli("keys", "--alg", alg, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    jwks = json.loads((tmp_path / "jwks.json").read_text())
    assert jwks["keys"][0]["alg"] == alg and "d" not in jwks["keys"][0]  # public members only
    if os.name == "posix":
        assert (tmp_path / "private.pem").stat().st_mode & 0o077 == 0
    token = mint("--sub", "carol", "--key", str(tmp_path / "private.pem"))
    assert jwt.get_unverified_header(token)["kid"] == jwks["keys"][0]["kid"]
    for flag, value in (("--jwks", "jwks.json"), ("--key", "public.pem")):
        checked = cli("check-token", token, flag, str(tmp_path / value))
        assert checked.returncode == 0, checked.stdout
        assert f"alg={alg}" in checked.stdout


def test_check_token_explains_failures(tmp_path: Path) -> None:
    expired = jwt.encode({"sub": "x", "exp": int(time.time()) - 3600}, SECRET, algorithm="HS256")
    result = cli("check-token", expired, "--secret", SECRET)
    assert result.returncode == 1 and "exp" in result.stdout and "expired" in result.stdout
    wrong = cli(
        "check-token",
        mint("--sub", "x", "--secret", SECRET),
        "--secret",
        "another-secret-of-enough-length-000",
    )
    assert wrong.returncode == 1 and "signature" in wrong.stdout
    assert "another-secret" not in wrong.stdout
    garbage = cli("check-token", "not-a-token", "--secret", SECRET)
    assert garbage.returncode == 1 and "malformed" in garbage.stdout
    no_exp = jwt.encode({"sub": "x"}, SECRET, algorithm="HS256")
    missing = cli("check-token", no_exp, "--secret", SECRET)
    assert missing.returncode == 1 and "exp: required claim is missing" in missing.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["token"],  # --sub is required
        ["token", "--sub", "a"],  # no key or secret
        ["token", "--sub", "a", "--secret", "s", "--key", "k.pem"],
        ["token", "--sub", "a", "--secret", "s", "--ttl", "soon"],
        ["token", "--sub", "a", "--secret", "s", "--alg", "RS256"],
        ["token", "--sub", "a", "--key", "/nonexistent/key.pem"],
        ["token", "--sub", "a", "--secret", "s", "--claim", "novalue"],
        ["keys", "--alg", "HS256", "--out", "/tmp/x"],
        ["check-token", "a.b.c"],  # no key given
        ["bogus-command"],
        [],
    ],
)
def test_bad_arguments_exit_2_without_traceback(args: list[str]) -> None:
    result = cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "error" in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {token}"} if token else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_demo_serves_and_printed_tokens_work() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [*agentos_mw_cmd(), "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        tokens: dict[str, str] = {}
        assert proc.stdout is not None
        while "RUNNER" not in tokens:
            line = proc.stdout.readline()
            assert line, "demo exited before printing tokens"
            name, sep, value = line.strip().partition("=")
            if sep and name in ("ADMIN", "READER", "RUNNER"):
                tokens[name] = value
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while True:
            try:
                assert _get(f"{base}/health") == 200
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        assert _get(f"{base}/agents") == 401
        assert _get(f"{base}/agents", tokens["READER"]) == 200
        assert _get(f"{base}/agents/a1", tokens["RUNNER"]) == 200
        assert _get(f"{base}/agents/a2", tokens["RUNNER"]) == 403
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agentos_mw", "token", "--sub", "dana", "--secret", SECRET],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])["sub"] == "dana"
