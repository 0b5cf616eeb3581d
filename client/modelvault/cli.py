"""`modelvault`: the command line of the client.

    modelvault register fraud --label 1.0.0 --param lr=0.01 --metric auc=0.93 \\
        --artifact model.pkl=out/model.pkl --lock redact
    modelvault upload fraud 3 model.pkl out/model.pkl
    modelvault request fraud 3 staging -m "Undergoing final testing."
    modelvault approve 12 -m "looks good"
    modelvault find 'stage == production and metrics.auc >= 0.9' --model fraud
    modelvault download fraud 3 model.pkl dest/
    modelvault download fraud@champion model.pkl dest/     # the version the alias names
    modelvault alias fraud champion 3 -m "v3 wins the A/B"  # --request for a protected one
    modelvault grants add fraud approve --team reviewers   # and: grants list|remove
    modelvault compare fraud 3 4; modelvault trend fraud --metric auc
    (and models, aliases, branches, branch, promote, flag, flags, resolve, comment,
    comments, docs, activity [--export csv], digest: commands.py)

The server, token and organization come from --url/--token/--org or MODELVAULT_URL,
MODELVAULT_TOKEN and MODELVAULT_ORG. An error prints one line on stderr and exits 1
(2 for a usage error).
"""

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import httpx

from modelvault import commands
from modelvault.client import Client, StageRequest
from modelvault.commands import add_version as _add_version
from modelvault.commands import request_line as _request_line
from modelvault.commands import version_line as _version_line
from modelvault.commands import version_of as _version
from modelvault.errors import ModelvaultError
from modelvault.lock import LEVELS
from modelvault.stage_change import STAGES


class ProgressBar:
    """A one-line progress bar on a stream (stderr), redrawn in place."""

    def __init__(self, label: str, stream: TextIO, width: int = 30):
        self.label, self.stream, self.width = label, stream, width
        self.last = -1
        self.drawn = False

    def __call__(self, done: int, total: int | None) -> None:
        self.drawn = True
        if total:
            percent = min(100, done * 100 // total)
            if percent == self.last and done != total:
                return
            self.last = percent
            filled = self.width * percent // 100
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {percent:3d}% {_size(done)}/{_size(total)}")
        else:
            self.stream.write(f"\r{self.label} {_size(done)}")
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _pairs(items: list[str] | None, *, parse_json: bool, what: str) -> dict[str, Any]:
    """`key=value` options; with parse_json, values read as JSON when they can (0.01 is a
    number, "adam" stays text)."""
    found: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ModelvaultError(f"{what} {item!r} is not key=value")
        if parse_json:
            try:
                found[key] = json.loads(value)
            except ValueError:
                found[key] = value
        else:
            found[key] = value
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelvault", description="Modelvault client")
    parser.add_argument("--url", help="server URL (MODELVAULT_URL)")
    parser.add_argument("--token", help="API token (MODELVAULT_TOKEN)")
    parser.add_argument("--org", help="organization slug (MODELVAULT_ORG)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    register = verbs.add_parser("register", help="register a version (and upload artifacts)")
    register.add_argument("model")
    register.add_argument("--create", action="store_true", help="create the model if missing")
    register.add_argument("--lock", choices=sorted(LEVELS), help="lock level")
    register.add_argument("--label", help="semantic version, e.g. 1.0.0")
    register.add_argument("--branch")
    register.add_argument("--description")
    register.add_argument("--framework")
    register.add_argument("--flavor")
    register.add_argument("--param", action="append", metavar="KEY=VALUE")
    register.add_argument("--metric", action="append", metavar="KEY=VALUE")
    register.add_argument("--tag", action="append", metavar="KEY=VALUE")
    register.add_argument("--artifact", action="append", metavar="PATH=LOCAL_FILE")
    register.add_argument(
        "--parent", action="append", metavar="MODEL@ALIAS|MODEL:NUMBER", help="lineage"
    )

    upload = verbs.add_parser("upload", help="upload a file as an artifact of a version")
    _add_version(upload)
    upload.add_argument("path", help="artifact path in the version")
    upload.add_argument("file", help="local file")

    request = verbs.add_parser("request", help="request a stage change")
    _add_version(request)
    request.add_argument("stage", choices=sorted(STAGES))
    request.add_argument("-m", "--comment", default="")
    request.add_argument("--archive-existing", action="store_true")

    for verb in ("approve", "reject", "cancel"):
        review = verbs.add_parser(verb, help=f"{verb} a stage change request")
        review.add_argument("request_id", type=int)
        review.add_argument("-m", "--comment", default="")

    verbs.add_parser("pending", help="list the requests you may review")

    find = verbs.add_parser("find", help="find versions with a query")
    find.add_argument("query", help="e.g. 'stage == production and metrics.auc >= 0.9'")
    find.add_argument("--model", help="only this model's versions")
    find.add_argument("--json", action="store_true", help="print the versions as JSON lines")

    lock = verbs.add_parser("lock", help="set a version's lock level")
    _add_version(lock)
    lock.add_argument("level", choices=sorted(LEVELS))

    download = verbs.add_parser("download", help="download and verify an artifact")
    _add_version(download)
    download.add_argument("path", help="artifact path in the version")
    download.add_argument("dest", nargs="?", help="directory (default: .)")

    show = verbs.add_parser("show", help="print a version (by number or alias)")
    _add_version(show)
    show.add_argument("--json", action="store_true", help="print the version as JSON")

    alias = verbs.add_parser("alias", help="point an alias at a version, or remove it")
    alias.add_argument("model")
    alias.add_argument("name", help="the alias, e.g. champion")
    alias.add_argument("number", nargs="?", type=int, help="the version to point it at")
    alias.add_argument("--remove", action="store_true", help="remove the alias")
    alias.add_argument(
        "--request",
        action="store_true",
        help="ask reviewers instead (how a writer moves a protected alias)",
    )
    alias.add_argument("-m", "--comment", default="")
    commands.add_parsers(verbs)
    return parser


def _parents(items: list[str] | None) -> list[Any] | None:
    """`--parent fraud@champion` as it is; `--parent fraud:3` as {model, number}."""
    found: list[Any] = []
    for item in items or []:
        model, colon, number = item.partition(":")
        if "@" in item:
            found.append(item)
        elif colon and number.isdigit():
            found.append({"model": model, "number": int(number)})
        else:
            raise ModelvaultError(f"--parent {item!r} is not MODEL@ALIAS or MODEL:NUMBER")
    return found or None


@contextlib.contextmanager
def _progress(args: argparse.Namespace, label: str, stderr: TextIO):
    """A progress bar (None with --quiet) whose line is ended however the transfer ends."""
    bar = None if args.quiet else ProgressBar(label, stderr)
    try:
        yield bar
    finally:
        if bar is not None and bar.drawn:
            bar.finish()


def run(args: argparse.Namespace, client: Client, stdout: TextIO, stderr: TextIO) -> None:
    verb = args.verb
    if commands.run(args, client, stdout):
        return
    if verb == "register":
        try:
            model = client.get_registered_model(args.model)
        except ModelvaultError as error:
            if error.status != 404 or not args.create:
                raise
            model = client.create_registered_model(args.model)
        artifacts = _pairs(args.artifact, parse_json=False, what="--artifact")
        fields = {
            "label": args.label,
            "branch": args.branch,
            "description": args.description,
            "framework": args.framework,
            "flavor": args.flavor,
            "params": _pairs(args.param, parse_json=True, what="--param") or None,
            "metrics": _pairs(args.metric, parse_json=True, what="--metric") or None,
            "tags": _pairs(args.tag, parse_json=False, what="--tag") or None,
            "parents": _parents(args.parent),
        }
        with _progress(args, "upload", stderr) as bar:
            version = model.create_version(
                args.lock, artifacts=artifacts or None, progress=bar, **fields
            )
        stdout.write(_version_line(version) + "\n")
    elif verb == "upload":
        version = _version(client, args)
        with _progress(args, args.path, stderr) as bar:
            artifact = version.upload_artifact(args.path, args.file, progress=bar)
        stdout.write(f"{artifact['path']}\t{artifact['size']}\t{artifact['sha256']}\n")
    elif verb == "request":
        version = _version(client, args)
        change = STAGES[args.stage](args.comment, archive_existing=args.archive_existing)
        stdout.write(_request_line(version.change_stage(change)) + "\n")
    elif verb in ("approve", "reject", "cancel"):
        request = StageRequest(client, {"id": args.request_id})
        getattr(request, verb)(args.comment)
        stdout.write(_request_line(request) + "\n")
    elif verb == "pending":
        for request in client.pending_approvals():
            stdout.write(_request_line(request) + "\n")
    elif verb == "find":
        if args.model:
            found = client.get_registered_model(args.model).versions.find(args.query)
        else:
            found = client.search_versions(args.query)
        for version in found:
            line = json.dumps(version.data) if args.json else _version_line(version)
            stdout.write(line + "\n")
    elif verb == "lock":
        version = _version(client, args)
        stdout.write(_version_line(version.set_lock_level(args.level)) + "\n")
    elif verb == "download":
        if "@" in args.model and args.number is not None and args.dest is None:
            # `download fraud@champion model.pkl dest/`: no number, so each word moves up one.
            args.number, args.path, args.dest = None, args.number, args.path
        version = _version(client, args)
        with _progress(args, args.path, stderr) as bar:
            target = version.download_artifact(args.path, args.dest or ".", progress=bar)
        stdout.write(f"{target}\n")
    elif verb == "show":
        version = _version(client, args)
        stdout.write((json.dumps(version.data) if args.json else _version_line(version)) + "\n")
    elif verb == "alias":
        _alias(client, args, stdout)


def _alias(client: Client, args: argparse.Namespace, stdout: TextIO) -> None:
    if args.remove == (args.number is not None):
        raise ModelvaultError("give the version to point the alias at, or --remove")
    model = client.get_registered_model(args.model)
    if args.request:
        request = model.request_alias(args.name, args.number, args.comment)
        stdout.write(_request_line(request) + "\n")
    elif args.remove:
        model.remove_alias(args.name)
        stdout.write(f"{args.model}@{args.name} removed\n")
    else:
        found = model.set_alias(args.name, args.number, args.comment)
        stdout.write(f"{args.model}@{found['name']} -> v{found['version']}\n")


def main(
    argv: Sequence[str] | None = None,
    *,
    client_factory: Callable[..., Client] = Client,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one verb; the exit code: 0 done, 1 refused or failed, 2 usage error."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        with client_factory(url=args.url, token=args.token, org=args.org) as client:
            run(args, client, stdout, stderr)
    except ModelvaultError as error:
        stderr.write(f"modelvault: error: {error.message}\n")
        return 1
    except httpx.HTTPError as error:
        stderr.write(f"modelvault: error: cannot reach the server: {error}\n")
        return 1
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        stderr.write(f"modelvault: error: {error.strerror or error}{where}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
