"""A real authority (``authority serve``, uvicorn on loopback, embedded backend) and real
headless Chromium (Debian's, driven by Playwright) with a virtual WebAuthn authenticator.

Shared by the browser tests and ``python -m tests.integration.console.screenshots``. The
authority's first admin key and first console admin come from its own commands
(``authority admin bootstrap``, ``authority console enrol``); everything else is made
over its HTTP API, as an operator would.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.revocation_support import free_port
from tests.support import JWT_BEARER, JWT_TYPE, TOKEN_EXCHANGE, AgentKey, tool_call

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CIBA = "urn:openid:params:grant-type:ciba"
AUDIENCE = "https://tools.example.test"
TEST_SECRET = "browser-test-secret-key-with-at-least-32-characters"


def _environment(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHORITY_")}
    env.update(
        AUTHORITY_CONFIG_FILE=os.devnull,
        # WebAuthn needs a domain for its relying party: localhost, not 127.0.0.1.
        AUTHORITY_ISSUER=f"http://localhost:{port}",
        AUTHORITY_HOST="127.0.0.1",
        AUTHORITY_PORT=str(port),
        AUTHORITY_DATA_DIR=str(data_dir),
        AUTHORITY_SECRET_KEY=TEST_SECRET,
        AUTHORITY_CONSOLE_SECURE_COOKIES="false",
        AUTHORITY_LOG_LEVEL="warning",
        AUTHORITY_CHECKPOINT_INTERVAL="0.2",
        AUTHORITY_KEY_ACTIVATION_DELAY="20",
    )
    return env


def _command(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "authority.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip()


@dataclass
class Authority:
    """The running authority, its admin API key and the console admin's enrolment link."""

    url: str
    admin_key: str
    admin_link: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def api(self, method: str, path: str, key: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code in (200, 201), (path, response.status_code, response.text)
        return response.json()


@contextlib.contextmanager
def authority(data_dir: Path) -> Iterator[Authority]:
    port = free_port()
    env = _environment(data_dir, port)
    admin_key = _command(env, "admin", "bootstrap")
    admin_link = _command(env, "console", "enrol", "--name", "Avery Admin", "--role", "admin")
    process = subprocess.Popen([sys.executable, "-m", "authority.cli", "serve"], env=env, cwd=ROOT)
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError("the authority exited")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the authority did not start")
            time.sleep(0.1)
        running = Authority(url, admin_key, admin_link)
        try:
            yield running
        finally:
            running.http.close()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Owner:
    """An owner with one agent, a tool needing approval, and a delegation covering both."""

    authority: Authority
    owner_id: str
    owner_key: str
    agent_id: str
    agent_key: AgentKey
    credential: str
    link: str

    def exchange(self, tool: str, resource: str, action: str) -> httpx.Response:
        attestation = self.agent_key.attestation(self.agent_id, time.time(), aud=self.authority.url)
        return self.authority.http.post(
            "/oauth2/token",
            data={
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": self.credential,
                "subject_token_type": JWT_TYPE,
                "actor_token": attestation,
                "actor_token_type": JWT_TYPE,
                "resource": AUDIENCE,
                "authorization_details": tool_call(tool, resource, action),
            },
        )

    def poll(self, auth_req_id: str) -> httpx.Response:
        attestation = self.agent_key.attestation(self.agent_id, time.time(), aud=self.authority.url)
        return self.authority.http.post(
            "/oauth2/token",
            data={
                "grant_type": CIBA,
                "auth_req_id": auth_req_id,
                "client_assertion_type": JWT_BEARER,
                "client_assertion": attestation,
            },
        )


def registries(a: Authority) -> str:
    """The resource server and its tools (once per authority); the server's id."""
    server = a.api(
        "POST", "/v1/resource-servers", a.admin_key, {"name": "tools", "audience": AUDIENCE}
    )
    for name, actions, risk in (
        ("github.issues.create", ["create", "read"], 1),
        ("deploy.run", ["run"], 3),
    ):
        a.api(
            "POST",
            "/v1/tools",
            a.admin_key,
            {
                "name": name,
                "resource_server_id": server["id"],
                "actions": actions,
                "read_actions": ["read"] if "read" in actions else [],
                "risk_tier": risk,
            },
        )
    return str(server["id"])


def new_owner(a: Authority, *, agent_name: str = "triager") -> Owner:
    owner = a.api("POST", "/v1/owners", a.admin_key, {"name": f"owner-{uuid.uuid4().hex[:6]}"})
    key = a.api("POST", f"/v1/owners/{owner['id']}/api-keys", a.admin_key, {})["api_key"]
    agent_key = AgentKey()
    agent = a.api(
        "POST",
        "/v1/agents",
        key,
        {"name": agent_name, "autonomy_level": 2, "jwks": agent_key.jwks()},
    )
    delegation = a.api(
        "POST",
        "/v1/delegations",
        key,
        {
            "agent_id": agent["id"],
            "intent": "triage bugs in acme/web",
            "scope": [
                {"tool": "github.issues.create", "resources": ["acme/*"], "actions": ["create"]},
                {"tool": "deploy.run", "resources": ["prod/*"], "actions": ["run"]},
            ],
            "expires_in": 3600,
        },
    )
    person = a.api(
        "POST",
        "/v1/console/people",
        a.admin_key,
        {"name": f"Olive {uuid.uuid4().hex[:4]}", "role": "owner", "owner_id": owner["id"]},
    )
    return Owner(
        a,
        owner["id"],
        key,
        agent["id"],
        agent_key,
        delegation["credential"],
        person["enrolment_url"],
    )


def new_person(a: Authority, role: str) -> str:
    made = a.api(
        "POST",
        "/v1/console/people",
        a.admin_key,
        {"name": f"{role}-{uuid.uuid4().hex[:4]}", "role": role},
    )
    return str(made["enrolment_url"])


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def person_page(browser: Browser, *, width: int = 1280, height: int = 900) -> Iterator[Page]:
    """A fresh browser profile with its own virtual passkey authenticator (user verified)."""
    context: BrowserContext = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("WebAuthn.enable", {"enableUI": False})
        cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        yield page
    finally:
        context.close()


def enrol(page: Page, link: str) -> None:
    """Open the one-time link and create the passkey; signed in afterwards."""
    page.goto(link)
    page.get_by_role("button", name="Create a passkey").click()
    page.wait_for_url(lambda url: "/console/enrol" not in url, timeout=15_000)


def csrf(page: Page) -> str:
    value = page.get_attribute('meta[name="csrf-token"]', "content")
    assert value
    return value
