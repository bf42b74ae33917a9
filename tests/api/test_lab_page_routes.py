"""The lab page's routes over HTTP: /lab and every file it loads are served with a strict
Content-Security-Policy and name no other host, / redirects to /lab, the files are package data (an
installed copy serves them), and GET /me tells the page who signed in and with which role."""

from __future__ import annotations

import re
import time
import tomllib
from datetime import datetime
from pathlib import Path

import httpx
from api_support import MakeClient, bearer, token

from task_scheduler.api.lab_page import FOLDER

REPOSITORY = Path(__file__).resolve().parents[2]
ASSET = re.compile(r'(?:src|href)="(lab/assets/[^"]+)"')


def _strict(policy: str) -> None:
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy and "http" not in policy


async def test_lab_page_and_its_files_are_served_with_a_strict_policy(anonymous: httpx.AsyncClient) -> None:
    page = await anonymous.get("/lab")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    _strict(page.headers["content-security-policy"])
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "an inline script"
    assert "style=" not in page.text and "<style" not in page.text  # no inline style
    linked = ASSET.findall(page.text)
    assert {"lab/assets/app.js", "lab/assets/lab.css"} <= set(linked)
    for name in sorted(p.name for p in FOLDER.iterdir()):
        response = await anonymous.get(f"/lab/assets/{name}")
        assert response.status_code == 200, name
        _strict(response.headers["content-security-policy"])
        assert response.headers["x-content-type-options"] == "nosniff"
        text = response.text.replace("http://www.w3.org/2000/svg", "")  # a namespace name, never fetched
        assert "http://" not in text and "https://" not in text, name
        assert ".innerHTML" not in response.text, name


async def test_lab_page_modules_are_served_as_javascript(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/lab/assets/app.js")

    assert response.headers["content-type"].startswith(("text/javascript", "application/javascript"))


async def test_root_redirects_to_the_lab_page(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/")

    assert response.status_code == 307
    assert response.headers["location"] == "/lab"


def test_lab_page_files_are_package_data() -> None:
    pyproject = tomllib.loads((REPOSITORY / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["task_scheduler.api.static.lab"]
    covered = {path for pattern in patterns for path in FOLDER.glob(pattern) if path.is_file()}

    assert covered == {path for path in FOLDER.iterdir() if path.is_file()}


async def test_me_names_the_caller_its_role_and_when_its_token_expires(make_client: MakeClient) -> None:
    operator = make_client(headers=bearer(token("operator", name="ana", ttl_s=600)))

    response = await operator.get("/me")

    assert response.status_code == 200, response.text
    me = response.json()
    assert (me["name"], me["role"]) == ("ana", "operator")
    expires_in_s = datetime.fromisoformat(me["expires_at"]).timestamp() - time.time()
    assert 590 < expires_in_s <= 601


async def test_me_refuses_a_missing_or_wrong_token(make_client: MakeClient) -> None:
    missing = await make_client().get("/me")
    wrong = await make_client(headers=bearer("not-a-token")).get("/me")

    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert "invalid token" in wrong.json()["detail"]
