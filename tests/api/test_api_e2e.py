"""The API of a real `csms serve` process: keys made with `csms api-keys`, and a bounded
property-based run of schemathesis against its `/openapi.json` that must find no 5xx."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.server_process import ServerProcess, run_cli, running_server

pytestmark = pytest.mark.slow


def api_url(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.env['CSMS_API_PORT']}"


def wait_for_api(server: ServerProcess, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{api_url(server)}/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no HTTP API after {timeout} s:\n{server.stderr_text()}")
        time.sleep(0.05)


def create_key(server: ServerProcess, name: str, scope: str) -> str:
    done = run_cli(["api-keys", "create", name, "--scope", scope], server.env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1].split()[-1]


def test_api_keys_from_the_cli(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        wait_for_api(server)
        key = create_key(server, "ops", "operate")
        assert key.startswith("csms_")
        url, auth = api_url(server), {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{url}/api/stations", headers=auth).status_code == 200
        assert httpx.post(f"{url}/api/stations", headers=auth, json={"id": "X"}).status_code == 403

        duplicate = run_cli(["api-keys", "create", "ops", "--scope", "read"], server.env)
        assert duplicate.returncode == 1 and "exists already" in duplicate.stderr
        bad_scope = run_cli(["api-keys", "create", "x", "--scope", "root"], server.env)
        assert bad_scope.returncode == 2 and "Traceback" not in bad_scope.stderr
        listed = run_cli(["api-keys", "list", "--format", "json"], server.env)
        assert '"ops"' in listed.stdout and key not in listed.stdout

        assert run_cli(["api-keys", "revoke", "ops"], server.env).returncode == 0
        assert httpx.get(f"{url}/api/stations", headers=auth).status_code == 401
        assert run_cli(["api-keys", "revoke", "ops"], server.env).returncode == 1


def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.skip("schemathesis is not installed (pip install schemathesis)")
    with running_server(tmp_path) as server:
        wait_for_api(server)
        key = create_key(server, "fuzz", "admin")
        done = subprocess.run(
            [
                st,
                "run",
                f"{api_url(server)}/openapi.json",
                "--header",
                f"Authorization: Bearer {key}",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "8",
                "--seed",
                "6",
                "--no-shrink",
                "--request-timeout",
                "10",
                # The live stream never ends by itself; it is tested on its own.
                "--exclude-path",
                "/api/events",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
        assert "Traceback" not in server.stderr_text()
