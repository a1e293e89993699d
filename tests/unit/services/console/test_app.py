"""The console's routes through a real ASGI client: pages that work offline, the state as
JSON, and actions dispatched to the host's ConsoleActions or refused with a reason."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from liveward.settings import ConsoleSettings, load_settings
from services.console.app import create_console_app, hlsjs_file
from services.console.errors import ActionFailed
from services.console.tokens import ViewerTokens


class RecordingActions:
    """ConsoleActions that remember what they were asked; rotation fails like Kafka would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def kill_region(self, region: str) -> dict[str, Any]:
        self.calls.append(("kill", region))
        return {"region": region, "killed": ["ingest", "origin"]}

    def restore_region(self, region: str) -> dict[str, Any]:
        self.calls.append(("restore", region))
        return {"region": region, "started": ["ingest"]}

    def revoke_viewer(self, viewer_id: str) -> dict[str, Any]:
        self.calls.append(("revoke", viewer_id))
        return {"viewer_id": viewer_id, "revocation_id": "r1"}

    def rotate_keys(self) -> dict[str, Any]:
        self.calls.append(("rotate", ""))
        raise ActionFailed("delivery-failed", "Kafka did not confirm the epoch", status=503)


def client(tmp_path: Path, hlsjs: Path | None = None) -> tuple[TestClient, RecordingActions]:
    settings = load_settings(
        state_dir=tmp_path,
        console=ConsoleSettings(hlsjs_path=hlsjs or ConsoleSettings().hlsjs_path),
    )
    actions = RecordingActions()
    app = create_console_app(
        settings,
        snapshot=lambda: {"regions": [{"name": "eu-west", "state": "down"}]},
        actions=actions,
        tokens=ViewerTokens(settings, auth_url="http://127.0.0.1:9"),
    )
    return TestClient(app), actions


def test_pages_load_only_their_own_scripts(tmp_path: Path) -> None:
    http, _ = client(tmp_path)
    for path in ("/", "/player?viewer=v&content=c"):
        page = http.get(path)
        assert page.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith("/") for s in sources), sources  # no CDN links
        for source in sources:
            if source != "/vendor/hls.min.js":
                assert http.get(source).status_code == 200, source
    assert http.get("/static/../app.py").status_code == 404


def test_hlsjs_is_served_from_the_repository_s_node_modules(tmp_path: Path) -> None:
    vendored = tmp_path / "hls.min.js"
    vendored.write_text("/* hls.js */")
    http, _ = client(tmp_path, vendored)
    assert http.get("/vendor/hls.min.js").text == "/* hls.js */"
    repository = Path(__file__).resolve().parents[4]
    assert hlsjs_file(load_settings()) == repository / "node_modules/hls.js/dist/hls.min.js"
    relative = ConsoleSettings(hlsjs_path=Path("vendor/hls.js"))
    assert hlsjs_file(load_settings(console=relative)) == repository / "vendor/hls.js"
    missing, _ = client(tmp_path, tmp_path / "absent.js")
    answer = missing.get("/vendor/hls.min.js")
    assert (answer.status_code, answer.json()["error"]) == (404, "hlsjs-missing")


def test_state_and_config_are_json(tmp_path: Path) -> None:
    http, _ = client(tmp_path)
    assert http.get("/api/state").json()["regions"][0]["state"] == "down"
    config = http.get("/api/config").json()
    assert config["viewer_id"] == "console-viewer"
    assert [p["id"] for p in config["pathways"]][:2] == ["eu-west.cdn-a", "eu-west.cdn-b"]


def test_actions_reach_the_host_and_bad_input_is_refused_with_a_reason(tmp_path: Path) -> None:
    http, actions = client(tmp_path)
    assert http.post("/api/actions/kill-region", json={"region": "eu-west"}).json() == {
        "action": "kill-region",
        "outcome": {"region": "eu-west", "killed": ["ingest", "origin"]},
    }
    assert http.post("/api/actions/restore-region", json={"region": "eu-west"}).status_code == 200
    assert http.post("/api/actions/revoke-viewer").json()["outcome"]["viewer_id"] == (
        "console-viewer"
    )
    refused = [
        http.post("/api/actions/kill-region", json={"region": "mars"}),
        http.post("/api/actions/kill-region", content=b"{"),
        http.post("/api/actions/revoke-viewer", json={"viewer_id": "<script>"}),
        http.post("/api/actions/rotate-keys", json={"emergency": False}),
        http.post("/api/token", json={"content_id": "../../x"}),
    ]
    assert [(r.status_code, r.json()["error"]) for r in refused] == [
        (404, "unknown-region"),
        (400, "malformed-json"),
        (400, "malformed-viewer-id"),
        (400, "emergency-only"),
        (400, "malformed-content-id"),
    ]
    failed = http.post("/api/actions/rotate-keys", headers={"Origin": "http://elsewhere"})
    assert (failed.status_code, failed.json()["error"]) == (503, "delivery-failed")
    assert failed.headers["access-control-allow-origin"] == "*"
    assert actions.calls == [
        ("kill", "eu-west"),
        ("restore", "eu-west"),
        ("revoke", "console-viewer"),
        ("rotate", ""),
    ]


def test_a_token_request_says_why_the_auth_service_cannot_be_asked(tmp_path: Path) -> None:
    http, _ = client(tmp_path)
    answer = http.post("/api/token", json={})
    assert (answer.status_code, answer.json()["error"]) == (502, "auth-unreachable")
