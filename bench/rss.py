"""Child process of bench.run: ingest one large file and report the growth of peak RSS.

A fresh process, so that nothing the parent allocated (seeding, the 256 MB run) counts. It
inherits the parent's environment (VAR_DIR and so the same database and store). Reports
getrusage's ru_maxrss before and after, and the resident set before with the peak after
(VmRSS, VmHWM of /proc/self/status, the peak reset just before the ingest).

    python -m bench.rss VERSION_ID USERNAME PATH   ->   one line of JSON on stdout
"""

import io
import json
import os
import resource
import sys
import time


def ru_maxrss_kb() -> int:
    # Linux reports ru_maxrss in KiB (macOS in bytes; the bench targets Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def proc_status_kb(field: str) -> int | None:
    """VmRSS (resident now) or VmHWM (peak resident) of this process image, in KiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux: clear_refs 5); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def main(argv: list[str]) -> None:
    version_id, username, path = argv
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from registry.models import ModelVersion
    from registry.services.artifacts import artifact_put

    actor = get_user_model().objects.get(username=username)
    version = ModelVersion.objects.get(pk=version_id)
    # A small upload first, so that lazy imports, the connection and the storage are in place
    # before the baseline is taken: the growth is then the ingest's own.
    artifact_put(actor=actor, version=version, path="warm-up.bin", source=io.BytesIO(b"warm"))
    # ru_maxrss starts at the parent's RSS when it forked us (the kernel carries it over
    # exec), so it can hide growth below that; VmHWM belongs to this image and is reset here.
    maxrss_before = ru_maxrss_kb()
    peak_reset = reset_peak()
    rss_before = proc_status_kb("VmRSS")
    started = time.perf_counter()
    with open(path, "rb") as source:
        artifact = artifact_put(actor=actor, version=version, path="large.bin", source=source)
    seconds = time.perf_counter() - started
    maxrss_after = ru_maxrss_kb()
    peak_after = proc_status_kb("VmHWM")
    print(
        json.dumps(
            {
                "ru_maxrss_before_kb": maxrss_before,
                "ru_maxrss_after_kb": maxrss_after,
                "rss_before_kb": rss_before,
                "peak_rss_after_kb": peak_after,
                "peak_reset": peak_reset,
                "seconds": seconds,
                "size": artifact.blob.size,
                "sha256": artifact.blob_id,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
