"""ARTIFACT_DOWNLOAD_REDIRECT and its expiry come from the environment (SPEC 5): off by
default, refused where there is no object store to redirect to or past what S3 signs."""

from pathlib import Path

import pytest

from tests.registry.test_settings import SECRET, read_settings, refusal

S3 = {**SECRET, "ARTIFACT_STORAGE": "s3", "AWS_STORAGE_BUCKET_NAME": "models"}


@pytest.fixture
def var_dir(tmp_path) -> Path:
    return tmp_path / "var"


def test_it_streams_downloads_by_default(var_dir):
    found = read_settings(
        S3, var_dir, "ARTIFACT_DOWNLOAD_REDIRECT", "ARTIFACT_DOWNLOAD_REDIRECT_SECONDS"
    )

    assert found == {"ARTIFACT_DOWNLOAD_REDIRECT": False, "ARTIFACT_DOWNLOAD_REDIRECT_SECONDS": 300}


def test_it_reads_the_redirect_and_its_expiry(var_dir):
    env = {**S3, "ARTIFACT_DOWNLOAD_REDIRECT": "true", "ARTIFACT_DOWNLOAD_REDIRECT_SECONDS": "60"}

    found = read_settings(
        env, var_dir, "ARTIFACT_DOWNLOAD_REDIRECT", "ARTIFACT_DOWNLOAD_REDIRECT_SECONDS"
    )

    assert found == {"ARTIFACT_DOWNLOAD_REDIRECT": True, "ARTIFACT_DOWNLOAD_REDIRECT_SECONDS": 60}


def test_it_refuses_the_redirect_without_s3(var_dir):
    message = refusal({**SECRET, "ARTIFACT_DOWNLOAD_REDIRECT": "true"}, var_dir)

    assert "ARTIFACT_DOWNLOAD_REDIRECT=true needs ARTIFACT_STORAGE=s3" in message


@pytest.mark.parametrize(("seconds", "error"), [("0", "1 or more"), ("604801", "at most 604800")])
def test_it_refuses_an_expiry_s3_cannot_sign(var_dir, seconds, error):
    env = {
        **S3,
        "ARTIFACT_DOWNLOAD_REDIRECT": "true",
        "ARTIFACT_DOWNLOAD_REDIRECT_SECONDS": seconds,
    }

    assert error in refusal(env, var_dir)
