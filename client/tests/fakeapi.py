"""A fake Modelvault API for httpx.MockTransport, and the JSON it answers with."""

import httpx
from modelvault import Client

BASE = "http://mv.test"
PREFIX = "/api/v1/orgs/acme"


def version_json(number=1, **fields):
    return {
        "id": f"00000000-0000-0000-0000-00000000000{number}",
        "model": "fraud",
        "number": number,
        "label": None,
        "branch": "main",
        "stage": "unassigned",
        "lock_level": "open",
        "digest": "sha256:" + "0" * 64,
        "params": {},
        "metrics": {},
        "tags": {},
        "artifacts": [],
        **fields,
    }


def request_json(request_id=7, **fields):
    return {
        "id": request_id,
        "model": "fraud",
        "version": 1,
        "from_stage": "unassigned",
        "to_stage": "staging",
        "status": "pending",
        "approvals": 0,
        "required_approvals": 1,
        **fields,
    }


class FakeAPI:
    """Routes (method, path) to handlers and records every request."""

    def __init__(self):
        self.routes = {}
        self.calls: list[httpx.Request] = []
        self.bodies: list[bytes] = []

    def on(self, method, path, handler):
        self.routes[(method, path)] = handler

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.calls.append(request)
        self.bodies.append(body)
        handler = self.routes.get((request.method, request.url.path))
        if handler is None:
            return httpx.Response(
                404, json={"error": {"code": "not_found", "message": "no route", "details": {}}}
            )
        if callable(handler):
            return handler(request)
        status, payload = handler
        return httpx.Response(status, json=payload)

    def client(self, **kwargs) -> Client:
        return Client(
            BASE, token="mv_secret", org="acme", transport=httpx.MockTransport(self), **kwargs
        )
