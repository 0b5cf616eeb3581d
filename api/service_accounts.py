"""Service accounts and their API tokens over HTTP (SPEC 4.6), for org admins.

A service account is a member of its org that never logs in: deactivate or reactivate it
as any member (POST .../members/{username}/deactivate), give it grants and teams as any
member. Its tokens are made here, bound to its org; the plaintext is in the create
response only.
"""

from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Router, Status

from api import schemas as s
from api.pagination import paginate
from registry.errors import NotFound
from registry.models import ApiToken, ServiceAccount
from registry.permissions import get_org_for_user
from registry.services.members import service_account_create
from registry.services.tokens import token_create, token_revoke

router = Router(tags=["service accounts"])
E = s.ERRORS
ACCOUNTS = "/orgs/{org}/service-accounts"
ACCOUNT = ACCOUNTS + "/{name}"
ScopeWord = Literal["read", "write"]


class ServiceAccountOut(s.Schema):
    name: str
    username: str
    description: str
    active: bool
    created_at: datetime


class ServiceAccountPage(s.Schema):
    items: list[ServiceAccountOut]
    next: str | None


class ServiceAccountIn(s.In):
    name: str
    description: str = ""


class TokenOut(s.Schema):
    id: int
    name: str
    prefix: str
    scope: ScopeWord
    org: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool


class TokenPage(s.Schema):
    items: list[TokenOut]
    next: str | None


class TokenCreateIn(s.In):
    name: str
    scope: ScopeWord = "read"
    expires_at: datetime | None = None


class TokenCreatedOut(TokenOut):
    token: str  # the plaintext: shown this once, never stored


def account_json(account: ServiceAccount) -> dict[str, Any]:
    return {
        "name": account.name,
        "username": account.user.get_username(),
        "description": account.description,
        "active": account.user.is_active,
        "created_at": account.created_at,
    }


def token_json(token: ApiToken, org_slug: str) -> dict[str, Any]:
    return {
        "id": token.pk,
        "name": token.name,
        "prefix": token.prefix,
        "scope": token.scope,
        "org": org_slug,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "active": token.is_active,
    }


def _account(user, org: str, name: str) -> ServiceAccount:
    """The service account `name` of `org`, for an admin of it."""
    found = get_org_for_user(user, org, "admin")
    account = ServiceAccount.objects.select_related("user", "org").filter(org=found, name=name)
    account = account.first()
    if account is None:
        raise NotFound(f"service account {name} of {found.slug} not found")
    return account


@router.get(ACCOUNTS, response={200: ServiceAccountPage, **E})
def list_service_accounts(
    request: HttpRequest, org: str, cursor: str | None = None, limit: s.Limit | None = None
):
    found = get_org_for_user(request.auth, org, "admin")
    accounts = ServiceAccount.objects.filter(org=found).select_related("user")
    return paginate(accounts, keys=["name"], cursor=cursor, limit=limit, render=account_json)


@router.post(ACCOUNTS, response={201: ServiceAccountOut, **E})
def create_service_account(request: HttpRequest, org: str, payload: ServiceAccountIn):
    found = get_org_for_user(request.auth, org, "admin")
    account = service_account_create(actor=request.auth, org=found, **payload.model_dump())
    return Status(201, account_json(account))


@router.get(ACCOUNT, response={200: ServiceAccountOut, **E})
def get_service_account(request: HttpRequest, org: str, name: str):
    return account_json(_account(request.auth, org, name))


@router.get(ACCOUNT + "/tokens", response={200: TokenPage, **E})
def list_service_account_tokens(
    request: HttpRequest,
    org: str,
    name: str,
    cursor: str | None = None,
    limit: s.Limit | None = None,
):
    account = _account(request.auth, org, name)
    tokens = ApiToken.objects.filter(user=account.user)
    return paginate(
        tokens,
        keys=["-id"],
        cursor=cursor,
        limit=limit,
        render=lambda token: token_json(token, account.org.slug),
    )


@router.post(ACCOUNT + "/tokens", response={201: TokenCreatedOut, **E})
def create_service_account_token(request: HttpRequest, org: str, name: str, payload: TokenCreateIn):
    """A token of the service account, bound to its org: read-only unless asked."""
    account = _account(request.auth, org, name)
    token, raw = token_create(
        actor=request.auth,
        user=account.user,
        name=payload.name,
        scope=payload.scope,
        org=account.org,
        expires_at=payload.expires_at,
    )
    return Status(201, {**token_json(token, account.org.slug), "token": raw})


@router.delete(ACCOUNT + "/tokens/{token_id}", response={204: None, **E})
def revoke_service_account_token(request: HttpRequest, org: str, name: str, token_id: s.Number):
    """Revoke: the next request with the token is refused (401)."""
    account = _account(request.auth, org, name)
    token = ApiToken.objects.filter(user=account.user, pk=token_id).first()
    if token is None:
        raise NotFound(f"token #{token_id} of {account.user.get_username()} not found")
    token_revoke(actor=request.auth, token=token)
    return Status(204, None)
