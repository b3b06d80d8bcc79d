"""supabase-js (npm) as a second official client, run with Node against the shared localbase."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from localbase.server import LocalbaseThread

pytestmark = pytest.mark.integration

JS_DIR = Path(__file__).resolve().parent.parent / "js"
MIN_NODE = 20


def _node_or_skip() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not installed: the supabase-js test needs Node >= 20 with npm")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    match = re.match(r"v(\d+)\.", version.stdout.strip())
    if match is None or int(match[1]) < MIN_NODE:
        pytest.skip(f"node {version.stdout.strip()} is too old: supabase-js needs Node >= 20")
    return node


def _install(npm: str) -> None:
    """``npm ci`` from the committed lock file, once (node_modules is git-ignored)."""
    if (JS_DIR / "node_modules" / "@supabase" / "supabase-js" / "package.json").exists():
        return
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"npm ci in {JS_DIR} failed:\n{result.stdout}\n{result.stderr}")


def test_supabase_js_signs_in_queries_and_receives_an_update(localbase: LocalbaseThread) -> None:
    node = _node_or_skip()
    _install(shutil.which("npm") or "npm")
    env = {
        **os.environ,
        "SUPABASE_URL": localbase.url,
        "SUPABASE_KEY": localbase.keys.publishable_key,
        "SUPABASE_SECRET_KEY": localbase.keys.secret_key,
    }

    result = subprocess.run(
        [node, "client_roundtrip.mjs"],
        cwd=JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )

    assert result.returncode == 0, f"node failed:\n{result.stdout}\n{result.stderr}"
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["anonymous"] is True and out["task_user_is_me"] is True
    assert out["fetched"]["kind"] == "demo" and out["fetched"]["params"] == {"from": "js"}
    assert out["count"] >= 1
    assert out["change"]["eventType"] == "UPDATE"
    assert out["change"]["message"] == "hello from js"
    assert out["change"]["id"] == out["fetched"]["id"]
    assert out["signed_up_with_session"] is True and out["same_user"] is True
    assert out["wrong_password"] == {"code": "invalid_credentials", "status": 400}
