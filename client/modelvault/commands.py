"""The CLI's verbs beyond registering and reviewing (cli.py): listing models, aliases,
branches and promotion, flags, comments, documentation, the activity log and its export,
sharing (`grants`), comparing versions, a metric's trend, and finding by digest. Each is
one or two client calls; the server decides and refuses.

    modelvault models --stage production
    modelvault grants add fraud approve --team reviewers
    modelvault compare fraud 3 4 5
    modelvault trend fraud --metric auc
    modelvault activity --model fraud --export csv -o exports/
"""

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from modelvault.client import Client, Flag, ModelVersion, StageRequest
from modelvault.errors import ModelvaultError
from modelvault.grants import PERMISSIONS

SEVERITIES = ("low", "medium", "high", "critical")
DOC_FORMATS = ("json", "md", "html")


# Shared with cli.py: naming a version, and printing versions and requests.


def add_version(parser: argparse.ArgumentParser) -> None:
    """A version as `MODEL NUMBER`, or as `MODEL@ALIAS` (the version the alias names now)."""
    parser.add_argument("model", metavar="MODEL[@ALIAS]", help="a model, or model@alias")
    parser.add_argument("number", nargs="?", metavar="NUMBER", help="the version (not with @)")


def version_of(client: Client, args: argparse.Namespace) -> ModelVersion:
    if "@" in args.model:
        if args.number is not None:
            raise ModelvaultError("name a version by an alias or by a number, not both")
        return client.get_version(args.model)
    if args.number is None or not args.number.isdigit():
        raise ModelvaultError(
            f"name the version as {args.model} NUMBER or {args.model}@ALIAS, not {args.number!r}"
        )
    return client.get_version(args.model, int(args.number))


def version_line(version: ModelVersion) -> str:
    data = version.data
    return "\t".join(
        str(x)
        for x in (
            data.get("model"),
            data.get("number"),
            data.get("stage"),
            data.get("lock_level"),
            data.get("label") or "-",
            data.get("digest"),
        )
    )


def request_line(request: StageRequest) -> str:
    data = request.data
    if data.get("kind") == "alias_move":
        change = f"@{data.get('alias')} -> v{data.get('version')}"
    elif data.get("kind") == "alias_remove":
        change = f"@{data.get('alias')} removed (now v{data.get('version')})"
    else:
        change = f"v{data.get('version')} {data.get('from_stage')} -> {data.get('to_stage')}"
    return (
        f"request {data.get('id')}: {data.get('model')} {change}, {data.get('status')} "
        f"({data.get('approvals')}/{data.get('required_approvals')} approvals)"
    )


def _flag_line(flag: Flag) -> str:
    data = flag.data
    return "\t".join(
        str(data.get(k)) for k in ("id", "model", "version", "severity", "status", "summary")
    )


def _grant_line(grant: dict[str, Any]) -> str:
    who = f"user:{grant['user']}" if grant.get("user") else f"team:{grant['team']}"
    return f"{who}\t{grant['permission']}"


def _shown(value: Any) -> str:
    return "-" if value is None else json.dumps(value, sort_keys=True)


def _json_line(stdout: TextIO, data: Any) -> None:
    stdout.write(json.dumps(data) + "\n")


# The parsers


def _json_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def _grantee(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a username")
    who.add_argument("--team", help="a team of the organization")


def add_parsers(verbs: Any) -> None:
    models = verbs.add_parser("models", help="list the models you may view")
    models.add_argument("query", nargs="?", help="keep models with a version matching it")
    models.add_argument("--stage", help="keep models with a version in this stage")
    _json_flag(models, "each model")

    aliases = verbs.add_parser("aliases", help="list a model's aliases")
    aliases.add_argument("model")

    branches = verbs.add_parser("branches", help="list a model's branches")
    branches.add_argument("model")
    branch = verbs.add_parser("branch", help="open an experimental branch")
    branch.add_argument("model")
    branch.add_argument("name")

    promote = verbs.add_parser("promote", help="register a branch's version anew on main")
    add_version(promote)
    promote.add_argument("--label")
    promote.add_argument("--description")

    flag = verbs.add_parser("flag", help="report that a version behaves unexpectedly")
    add_version(flag)
    flag.add_argument("-m", "--summary", required=True)
    flag.add_argument("--severity", choices=SEVERITIES, default="medium")
    flag.add_argument("--details", default="")
    flag.add_argument("--digest", help="the digest the monitor observed")
    flags = verbs.add_parser("flags", help="list a version's flags")
    add_version(flags)
    flags.add_argument("--status", choices=("open", "resolved"))
    resolve = verbs.add_parser("resolve", help="resolve a flag")
    resolve.add_argument("flag_id", type=int)
    resolve.add_argument("-m", "--comment", default="")

    comment = verbs.add_parser("comment", help="comment on a model, or on one of its versions")
    add_version(comment)
    comment.add_argument("-m", "--body", required=True)
    comments = verbs.add_parser("comments", help="print a model's or a version's comments")
    add_version(comments)

    docs = verbs.add_parser("docs", help="a version's technical documentation")
    add_version(docs)
    docs.add_argument("--format", choices=DOC_FORMATS, default="md")
    docs.add_argument("-o", "--output", help="write to this file (default: stdout)")

    activity = verbs.add_parser("activity", help="the activity log, or its verifiable export")
    activity.add_argument("--model")
    activity.add_argument("--version", type=int, help="with --model")
    activity.add_argument("--since", help="ISO 8601 time with its zone (included)")
    activity.add_argument("--until", help="ISO 8601 time with its zone (excluded)")
    activity.add_argument("--export", choices=("jsonl", "csv"), help="download the export")
    activity.add_argument("-o", "--output", default=".", help="export file or directory")
    _json_flag(activity, "each event")

    grants = verbs.add_parser("grants", help="who may view, write and approve a model")
    actions = grants.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list the model's grants")
    listing.add_argument("model")
    for action, text in (("add", "grant a permission"), ("remove", "revoke a permission")):
        change = actions.add_parser(action, help=text)
        change.add_argument("model")
        change.add_argument("permission", choices=PERMISSIONS)
        _grantee(change)

    compare = verbs.add_parser("compare", help="2 to 5 versions side by side")
    compare.add_argument("model")
    compare.add_argument("numbers", nargs="*", type=int, metavar="NUMBER", help="default: latest 2")
    compare.add_argument("--all", action="store_true", help="rows that do not differ too")
    _json_flag(compare, "the comparison")

    trend = verbs.add_parser("trend", help="a metric across a model's versions")
    trend.add_argument("model")
    trend.add_argument("--metric", help="default: the first by name")
    trend.add_argument("--last", type=int, help="the latest N versions (default 30)")
    _json_flag(trend, "the trend")

    digest = verbs.add_parser("digest", help="find the versions with a digest")
    digest.add_argument("digest", help="sha256:... (or its hex)")
    _json_flag(digest, "each version")


# Running them


def _models(client: Client, args: argparse.Namespace, stdout: TextIO) -> None:
    for model in client.list_registered_models(args.query, stage=args.stage):
        if args.json:
            _json_line(stdout, model.data)
        else:
            stdout.write(f"{model.name}\t{model.data.get('description', '')}\n")


def _comments_target(client: Client, args: argparse.Namespace):
    """The version when one is named (NUMBER or @ALIAS), else the model."""
    if "@" in args.model or args.number is not None:
        return version_of(client, args)
    return client.get_registered_model(args.model)


def _docs(client: Client, args: argparse.Namespace, stdout: TextIO) -> None:
    found = version_of(client, args).documentation(args.format)
    text = json.dumps(found, indent=2) + "\n" if args.format == "json" else found
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        stdout.write(f"{args.output}\n")
    else:
        stdout.write(text)


def _activity(client: Client, args: argparse.Namespace, stdout: TextIO) -> None:
    filters = {"model": args.model, "version": args.version, "since": args.since}
    filters["until"] = args.until
    if args.export:
        path = client.export_activity(args.output, format=args.export, **filters)
        stdout.write(f"{path}\n")
        return
    for event in client.activity(**filters):
        if args.json:
            _json_line(stdout, event)
        else:
            fields = ("seq", "created_at", "actor", "verb", "target")
            stdout.write("\t".join(str(event.get(f)) for f in fields) + "\n")


def _grants(client: Client, args: argparse.Namespace, stdout: TextIO) -> None:
    grants = client.get_registered_model(args.model).grants
    if args.action == "list":
        for grant in grants.list():
            stdout.write(_grant_line(grant) + "\n")
    elif args.action == "add":
        grant = grants.add(args.permission, user=args.user, team=args.team)
        stdout.write(f"granted {_grant_line(grant)}\n")
    else:
        grants.remove(args.permission, user=args.user, team=args.team)
        who = f"user:{args.user}" if args.user else f"team:{args.team}"
        stdout.write(f"revoked {who}\t{args.permission}\n")


def _compare(client: Client, args: argparse.Namespace, stdout: TextIO) -> None:
    found = client.get_registered_model(args.model).compare(*args.numbers)
    if args.json:
        _json_line(stdout, found)
        return
    numbers = [f"v{v['number']}" for v in found["versions"]]
    stdout.write("\t".join(["section", "key", *numbers]) + "\n")
    for section, rows in found["sections"].items():
        for row in rows:
            if row["differs"] or args.all:
                mark = "*" if row["differs"] else " "
                values = [_shown(v) for v in row["values"]]
                stdout.write("\t".join([f"{mark}{section}", row["key"] or "-", *values]) + "\n")


def _trend(client: Client, args: argparse.Namespace, stdout: TextIO) -> None:
    found = client.get_registered_model(args.model).trend(args.metric, last=args.last)
    if args.json:
        _json_line(stdout, found)
        return
    stdout.write(f"# {found['metric'] or 'no numeric metric'}\n")
    for point in found["points"]:
        stdout.write(f"v{point['version']}\t{point['value']}\n")


def _simple(client: Client, args: argparse.Namespace, stdout: TextIO) -> bool:
    """The verbs that are one call and one line each; whether `args.verb` is one."""
    write = stdout.write
    verb = args.verb
    if verb == "aliases":
        for alias in client.get_registered_model(args.model).aliases():
            lock = "\tprotected" if alias["protected"] else ""
            write(f"{args.model}@{alias['name']}\tv{alias['version']}{lock}\n")
    elif verb == "branches":
        for branch in client.get_registered_model(args.model).branches():
            write(f"{branch['name']}\t{'protected' if branch['protected'] else '-'}\n")
    elif verb == "branch":
        found = client.get_registered_model(args.model).create_branch(args.name)
        write(f"{args.model}:{found['name']} created\n")
    elif verb == "promote":
        promoted = version_of(client, args).promote(label=args.label, description=args.description)
        write(version_line(promoted) + "\n")
    elif verb == "flag":
        found = version_of(client, args).flag(
            args.summary, severity=args.severity, details=args.details, digest=args.digest
        )
        write(_flag_line(found) + "\n")
    elif verb == "flags":
        for found in version_of(client, args).flags(args.status):
            write(_flag_line(found) + "\n")
    elif verb == "resolve":
        write(_flag_line(Flag(client, {"id": args.flag_id}).resolve(args.comment)) + "\n")
    elif verb == "comment":
        found = _comments_target(client, args).comments.add(args.body)
        write(f"comment {found['id']} by {found['author']}\n")
    elif verb == "comments":
        for found in _comments_target(client, args).comments.list():
            where = f"v{found['version']}" if found.get("version") else found["model"]
            write(f"{found['created_at']}\t{found['author']}\t{where}\t{found['body']}\n")
    elif verb == "digest":
        for version in client.find_by_digest(args.digest):
            write((json.dumps(version.data) if args.json else version_line(version)) + "\n")
    else:
        return False
    return True


RUNNERS = {
    "models": _models,
    "docs": _docs,
    "activity": _activity,
    "grants": _grants,
    "compare": _compare,
    "trend": _trend,
}


def run(args: argparse.Namespace, client: Client, stdout: TextIO) -> bool:
    """Run the verb if it is one of these; whether it was."""
    runner = RUNNERS.get(args.verb)
    if runner is not None:
        runner(client, args, stdout)
        return True
    return _simple(client, args, stdout)
