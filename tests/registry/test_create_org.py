"""`manage.py create_org SLUG --admin USERNAME`: a fresh install booted without the shell."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from registry.models import ActivityEvent, Membership, Organization, Role

pytestmark = pytest.mark.django_db
User = get_user_model()


def create_org(*args: str) -> str:
    out = io.StringIO()
    call_command("create_org", *args, stdout=out)
    return out.getvalue()


def test_it_creates_the_org_and_its_admin_who_can_then_log_in(monkeypatch):
    monkeypatch.delenv("MODELVAULT_ADMIN_PASSWORD", raising=False)
    out = create_org("northwind", "--admin", "nadia", "--name", "Northwind", "--email", "n@x.io")

    org = Organization.objects.get(slug="northwind")
    user = User.objects.get(username="nadia")
    assert (org.name, user.email) == ("Northwind", "n@x.io")
    assert Membership.objects.get(org=org, user=user).role == Role.ADMIN
    assert ActivityEvent.objects.filter(org=org, verb="org.created").count() == 1
    assert "Created organization northwind with admin nadia" in out
    password = out.strip().splitlines()[-1]
    assert len(password) >= 20 and user.check_password(password)
    client = Client()
    response = client.post("/login/", {"username": "nadia", "password": password})
    assert response.status_code == 302
    assert "northwind" in client.get("/").content.decode()


def test_it_takes_the_new_admins_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("MODELVAULT_ADMIN_PASSWORD", "correct horse battery staple")
    out = create_org("northwind", "--admin", "nadia")
    assert User.objects.get(username="nadia").check_password("correct horse battery staple")
    assert "correct horse" not in out and "not shown again" not in out


def test_it_makes_an_existing_user_the_admin_and_leaves_their_password(alice):
    out = create_org("northwind", "--admin", "alice")
    assert Membership.objects.get(org__slug="northwind", user=alice).role == Role.ADMIN
    assert "password" not in out


def test_it_changes_nothing_when_run_again(alice):
    create_org("northwind", "--admin", "alice")
    events = ActivityEvent.objects.count()
    out = create_org("northwind", "--admin", "alice")
    assert "already its admin" in out and ActivityEvent.objects.count() == events


def test_it_refuses_an_existing_org_for_someone_who_is_not_its_admin(acme, carol):
    with pytest.raises(CommandError, match="exists and carol is not its admin"):
        create_org("acme", "--admin", "carol")
    assert Membership.objects.get(org=acme, user=carol).role == Role.MEMBER


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("Bad Slug!", "--admin", "nadia"), None, "organization slug 'Bad Slug!'"),
        (("northwind", "--admin", "na dia"), None, "user 'na dia': username"),
        (("northwind", "--admin", "nadia"), "123", "MODELVAULT_ADMIN_PASSWORD: This password"),
    ],
)
def test_it_refuses_bad_input_and_changes_nothing(monkeypatch, args, env, message):
    if env is None:
        monkeypatch.delenv("MODELVAULT_ADMIN_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("MODELVAULT_ADMIN_PASSWORD", env)
    users, events = User.objects.count(), ActivityEvent.objects.count()
    with pytest.raises(CommandError, match="nothing was changed") as refused:
        create_org(*args)
    assert message in str(refused.value)
    assert not Organization.objects.filter(slug__in=["northwind", "Bad Slug!"]).exists()
    assert (User.objects.count(), ActivityEvent.objects.count()) == (users, events)
