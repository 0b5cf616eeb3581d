"""The SSRF guard's parsing and the webhook signature (no network)."""

import socket

import pytest

from notifications.signing import sign, verify
from notifications.ssrf import check_url, literal_address, refusal
from registry.errors import Invalid

REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://0x7f000001/hook",
    "http://2130706433/hook",
    "http://0177.0.0.1/hook",
    "http://0.0.0.0/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",
    "http://224.0.0.1/hook",
    "http://[fe80::1]/hook",
    "http://[fc00::1]/hook",
    "http://240.0.0.1/hook",
]


@pytest.mark.parametrize("url", REFUSED)
def test_it_refuses_a_non_public_target(settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(Invalid, match="refused"):
        check_url(url)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://x/", "ftp://example.com/"])
def test_it_refuses_a_scheme_other_than_http(url):
    with pytest.raises(Invalid, match="http or https"):
        check_url(url)


def test_it_refuses_credentials_in_the_url():
    with pytest.raises(Invalid, match="credentials"):
        check_url("https://user:pw@93.184.216.34/")


def test_it_reads_every_spelling_of_an_ipv4_address():
    expected = literal_address("127.0.0.1")
    for spelling in ("0x7f000001", "2130706433", "0177.0.0.1", "127.1", "0x7f.1"):
        assert literal_address(spelling) == expected, spelling
    assert literal_address("example.com") is None
    assert literal_address("1.2.3.4.5") is None


def test_it_refuses_a_hostname_that_resolves_to_a_private_address(settings, monkeypatch):
    settings.WEBHOOK_ALLOW_PRIVATE = False

    def fake_getaddrinfo(host, port, *args, **kwargs):
        assert host == "hooks.example.com"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(Invalid, match="10.0.0.7 is a private address"):
        check_url("https://hooks.example.com/hook")


def test_it_accepts_a_public_target_and_pins_its_address(settings, monkeypatch):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))
        ],
    )
    target = check_url("https://hooks.example.com/in?x=1")
    assert (target.host, target.port, str(target.address), target.path) == (
        "hooks.example.com",
        443,
        "93.184.216.34",
        "/in?x=1",
    )


def test_it_allows_private_targets_when_the_setting_says_so(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert str(check_url("http://127.0.0.1:8080/hook").address) == "127.0.0.1"


def test_it_names_why_an_address_is_refused():
    assert refusal(literal_address("8.8.8.8")) is None
    assert "loopback" in refusal(literal_address("::ffff:127.0.0.1"))
    assert "link-local" in refusal(literal_address("169.254.169.254"))


def test_it_signs_timestamp_and_body_with_hmac_sha256():
    import hashlib
    import hmac

    body = b'{"event": "stage.applied"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1700000000, body) == f"sha256={expected}"
    assert verify("s3cret", "1700000000", body, f"sha256={expected}")
    assert not verify("s3cret", "1700000001", body, f"sha256={expected}")
    assert not verify("other", "1700000000", body, f"sha256={expected}")


def test_it_keeps_the_urls_host_in_the_host_header():
    from notifications.sending import host_header
    from notifications.ssrf import Target

    v6 = Target("http", "::1", 8080, literal_address("::1"), "/")
    named = Target("https", "hooks.example.com", 443, literal_address("93.184.216.34"), "/")
    assert host_header(v6) == "[::1]:8080"
    assert host_header(named) == "hooks.example.com"
