"""The single sign-on settings (config/settings.py), loaded in a fresh process as
tests/registry/test_settings.py does."""

import pytest

from tests.registry.test_settings import read_settings, refusal

SECRET = {"SECRET_KEY": "x" * 50}


@pytest.fixture
def var_dir(tmp_path):
    return tmp_path / "var"


def test_it_is_off_and_local_login_on_by_default(var_dir):
    found = read_settings(SECRET, var_dir, "SSO_ENABLED", "LOCAL_LOGIN", "OIDC_OP_TOKEN_ENDPOINT")
    assert found == {"SSO_ENABLED": False, "LOCAL_LOGIN": True, "OIDC_OP_TOKEN_ENDPOINT": ""}


def test_it_takes_the_endpoints_one_by_one(var_dir):
    env = {
        **SECRET,
        "OIDC_RP_CLIENT_ID": "modelvault",
        "OIDC_OP_AUTHORIZATION_ENDPOINT": "https://id.example.com/auth",
        "OIDC_OP_TOKEN_ENDPOINT": "https://id.example.com/token",
        "OIDC_OP_USER_ENDPOINT": "https://id.example.com/userinfo",
        "OIDC_OP_JWKS_ENDPOINT": "https://id.example.com/jwks",
        "OIDC_GROUPS_CLAIM": "roles",
        "LOCAL_LOGIN": "false",
    }
    found = read_settings(
        env, var_dir, "SSO_ENABLED", "OIDC_OP_TOKEN_ENDPOINT", "OIDC_RP_SCOPES", "LOCAL_LOGIN"
    )
    assert found == {
        "SSO_ENABLED": True,
        "OIDC_OP_TOKEN_ENDPOINT": "https://id.example.com/token",
        "OIDC_RP_SCOPES": "openid email profile roles",
        "LOCAL_LOGIN": False,
    }


def test_it_reads_nothing_from_the_issuer_while_loading(var_dir):
    # The issuer's address answers nothing: loading the settings must not ask it.
    env = {**SECRET, "OIDC_RP_CLIENT_ID": "modelvault", "OIDC_OP_ISSUER": "http://127.0.0.1:9/"}
    found = read_settings(env, var_dir, "SSO_ENABLED", "OIDC_OP_ISSUER")
    assert found == {"SSO_ENABLED": True, "OIDC_OP_ISSUER": "http://127.0.0.1:9"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OIDC_RP_CLIENT_ID": "modelvault"}, "needs OIDC_OP_ISSUER"),
        ({"LOCAL_LOGIN": "false"}, "LOCAL_LOGIN=false needs single sign-on"),
        ({"LOCAL_LOGIN": "no"}, "LOCAL_LOGIN must be true or false"),
    ],
)
def test_it_refuses_settings_that_cannot_work(var_dir, env, message):
    assert message in refusal({**SECRET, **env}, var_dir)
