"""The panel's routes (Starlette, Jinja2 with autoescape): overview (and its fragment, polled by a few lines of script;
a meta refresh without script), confirmation pages, actions, job pages, history, /api/status. Pages read and act
in the worker threads Starlette runs blocking calls in; domain errors become a page with the CLI's message."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from adapters.base import BackendError, BackendUnavailable
from adapters.urls import mask_urls_in
from migrator.config import Settings
from migrator.errors import BadInput, CheckFailed, MigratorError
from migrator.routing import history
from migrator.web import actions, panel, playbooks, security

HERE = Path(__file__).parent
ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                         undefined=jinja2.StrictUndefined)
ENV.filters["pct"] = lambda v: "–" if v is None else f"{v:.1%}"
ENV.filters["secs"] = lambda v: "–" if v is None else f"{v:.2f}s"
ENV.filters["when"] = lambda v: "" if v is None else v.strftime("%Y-%m-%d %H:%M:%S")
ENV.globals["summarize"] = history.summarize
ENV.filters["query"] = lambda d: urlencode({k: v for k, v in d.items() if v})


@dataclass
class Panel:
    settings: Settings
    token: str
    playbook_dir: Path
    runs: playbooks.Runs
    overview: panel.SharedOverview
    refresh_seconds: float = 2.0

    def page(self, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        html = ENV.get_template(name).render(csrf=security.csrf_token(self.token), refresh=self.refresh_seconds,
                                             **values)
        return HTMLResponse(html, status_code=status)


def _status_of(exc: Exception) -> int:
    if isinstance(exc, CheckFailed):
        return 409  # a gate refused: the request was fine, the state of things is not
    if isinstance(exc, BadInput):
        return 400
    return 503 if isinstance(exc, BackendUnavailable) else 500


async def _guarded(panel_: Panel, title: str, call: Callable[[], Response]) -> Response:
    try:
        return await run_in_threadpool(call)
    except (MigratorError, BackendError) as exc:
        return panel_.page("result.html", _status_of(exc), title=title, ok=False, message=mask_urls_in(str(exc)))


def _overview(template: str) -> Callable[[Request], Any]:
    async def handle(request: Request) -> Response:
        p: Panel = request.app.state.panel
        plans = playbooks.available(p.playbook_dir)
        return await _guarded(p, "overview", lambda: p.page(template, view=p.overview.get(), plans=plans,
                                                            plan_files={Path(f).stem: f for f in plans}))
    return handle


overview, fragment = _overview("overview.html"), _overview("_overview_body.html")


def _form_values(data: Any) -> dict[str, Any]:
    return {"action": data.get("action", ""), "job": data.get("job", ""), "percent": data.get("percent", ""),
            "ids": " ".join(data.getlist("ids")) if hasattr(data, "getlist") else data.get("ids", ""),
            "playbook": data.get("playbook", ""), "params": data.get("params", "")}


async def confirm(request: Request) -> Response:
    p: Panel = request.app.state.panel
    values = _form_values(request.query_params)
    action = values["action"]
    if action not in actions.TITLES:
        return p.page("result.html", 400, title="unknown action", ok=False,
                      message=f"no action {action!r}; pick one on the overview")
    title = actions.TITLES[action].format(job=values["job"], percent=_percent_words(values["percent"]),
                                          what=values["ids"] or values["job"], playbook=values["playbook"])
    return p.page("confirm.html", title=title, values=values, by=request.cookies.get("migrator_user", ""),
                  forcible=action in ("flip", "flip-back", "rollout"))


def _percent_words(percent: str) -> str:
    return "all" if percent.strip().lower() == "all" else f"{percent.strip()}%"


def _perform(p: Panel, values: dict[str, Any], by: str, force: bool) -> str:
    action = values["action"]
    if action in ("playbook-run", "playbook-abort"):
        actions.actor(by)
        plan = playbooks.load(p.playbook_dir, values["playbook"], values["params"], lenient=action != "playbook-run")
        return p.runs.start(plan) if action == "playbook-run" else playbooks.abort(p.settings, plan)
    request = actions.Request(action, by, values["job"], values["percent"], tuple(values["ids"].split()), force)
    return actions.ROUTING[action](p.settings, request)


async def act(request: Request) -> Response:
    p: Panel = request.app.state.panel
    form = await request.form()
    if not security.same(str(form.get("csrf", "")), security.csrf_token(p.token)) or not security.same_origin(request):
        return p.page("result.html", 403, title="refused", ok=False,
                      message="403: the form's CSRF token is missing or wrong (or it came from another site); "
                              "reload the overview and try again")
    values = _form_values(form)
    if values["action"] not in actions.TITLES:
        return p.page("result.html", 400, title="unknown action", ok=False, message=f"no action {values['action']!r}")
    if form.get("confirmed") != "yes":
        return RedirectResponse("/confirm?" + urlencode({k: v for k, v in values.items() if v}), status_code=303)
    by, force = str(form.get("by", "")), form.get("force") == "yes"
    title = actions.TITLES[values["action"]].format(job=values["job"], percent=_percent_words(values["percent"]),
                                                    what=values["ids"] or values["job"], playbook=values["playbook"])
    response = await _guarded(p, title, lambda: p.page("result.html", title=title, ok=True,
                                                       message=_perform(p, values, by, force)))
    p.overview.forget()  # the next overview shows what the action changed (or what refused it)
    if by.strip():
        response.set_cookie("migrator_user", by.strip()[:actions.MAX_NAME], httponly=True, samesite="strict")
    return response


async def job_lookup(request: Request) -> Response:
    job_id = request.query_params.get("id", "").strip()
    if not job_id:
        return RedirectResponse("/", status_code=303)
    return RedirectResponse(request.url_for("job", job_id=job_id).path, status_code=303)


async def job_page(request: Request) -> Response:
    p: Panel = request.app.state.panel
    job_id = request.path_params["job_id"]

    def render() -> Response:
        found = panel.find_job(p.settings, job_id)
        if found is None:
            return p.page("job.html", 404, job=None, job_id=job_id, args="")
        job, args = found
        return p.page("job.html", job=job, job_id=job_id, args=args,
                      error=mask_urls_in(f"{job.error_type}: {job.error_message}") if job.error_type else "",
                      traceback=mask_urls_in(job.traceback or ""))
    return await _guarded(p, f"job {job_id}", render)


async def history_page(request: Request) -> Response:
    p: Panel = request.app.state.panel
    job = request.query_params.get("job", "").strip()
    return await _guarded(p, "history", lambda: p.page("history.html", job=job,
                                                     entries=panel.audit_log(p.settings, job or None)))


async def api_status(request: Request) -> Response:
    p: Panel = request.app.state.panel
    try:
        report = await run_in_threadpool(panel.status_report, p.settings)
    except (MigratorError, BackendError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=_status_of(exc))
    return JSONResponse(report.to_json())


def create_app(settings: Settings, token: str, playbook_dir: Path = Path("playbooks"),
               refresh_seconds: float = 2.0) -> Starlette:
    runs = playbooks.Runs(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(runs.stop)  # no playbook thread outlives the server

    app = Starlette(routes=[
        Route("/", overview),
        Route("/fragment/overview", fragment),
        Route("/confirm", confirm),
        Route("/act", act, methods=["POST"]),
        Route("/jobs", job_lookup),
        Route("/jobs/{job_id:path}", job_page, name="job"),
        Route("/history", history_page),
        Route("/api/status", api_status),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ], middleware=[Middleware(security.TokenAuth, token=token)], lifespan=lifespan)
    shared = panel.SharedOverview(settings, window_minutes=15, max_age=refresh_seconds / 2)
    app.state.panel = Panel(settings, token, playbook_dir, runs, shared, refresh_seconds)
    return app
