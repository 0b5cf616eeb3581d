"""The versions of one MLflow model, for mlflow_api/importer.py: each arrives whole in one
transaction (its row with MLflow's number, its files, its stage, the aliases on it), or a
version imported before is completed with what it lacks. Files are streamed from MLflow's
artifact proxy into a temporary folder first, hashed and size-checked, so that no
transaction waits on the network."""

import contextlib
import hashlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import transaction

from mlflow_api.mapping import RUN_TAGS, TO_MLFLOW_STAGE, stage_from_mlflow
from mlflow_api.mlflow_source import RemoteFile, SourceError
from registry import validation
from registry.errors import Invalid, RegistryError
from registry.models import Alias, Artifact, ModelVersion, RegisteredModel, Stage, VersionSequence
from registry.services.aliases import alias_set, clean_alias_name
from registry.services.artifacts import artifact_put
from registry.services.imports import stage_import
from registry.services.locks import lock_model_transitions
from registry.services.versions import Upload, version_create, version_update

if TYPE_CHECKING:
    from mlflow_api.importer import ModelImport

IMPORTED_STAGE_COMMENT = "Imported from MLflow: the stage MLflow had, not approved in Modelvault."


def mlflow_tags(row: dict[str, Any]) -> dict[str, str]:
    """MLflow's tags, a list of {key, value}, as a dict."""
    return {item["key"]: item.get("value") or "" for item in row.get("tags") or []}


def wanted_fields(job: "ModelImport", version: dict[str, Any], number: int) -> dict[str, Any]:
    """The version's fields in Modelvault's terms, as mlflow_api/mapping.py says."""
    where = f"{job.result.name} v{number}"
    tags = job.clean_tags(mlflow_tags(version), where, reserved=True)
    for mlflow_field, key in RUN_TAGS.items():
        if version.get(mlflow_field):
            tags[key] = version[mlflow_field]
    return {
        "description": version.get("description") or "",
        "tags": tags,
        "source_run": version.get("source") or "",
    }


def stage_of(job: "ModelImport", version: dict[str, Any], number: int) -> str:
    name = version.get("current_stage") or "None"
    try:
        return stage_from_mlflow(name)
    except Invalid:
        job.note(
            f"{job.result.name} v{number}: stage {name!r} has no Modelvault stage: left unassigned"
        )
        return Stage.UNASSIGNED


def create_version(
    job: "ModelImport", model: RegisteredModel, version: dict[str, Any], number: int
):
    name = job.result.name
    wanted = wanted_fields(job, version, number)
    try:
        validation.short_text(wanted["source_run"], "source", 1024)
        validation.short_text(wanted["description"], "description", validation.MAX_TEXT)
    except Invalid as exc:
        job.note(f"{name} v{number}: {exc.message}: not imported")
        return
    taken = VersionSequence.objects.filter(model=model).values_list("last_number", flat=True)
    if taken.first() is not None and taken.first() >= number:
        job.note(
            f"{name} v{number}: number {number} was used in Modelvault (by a version "
            "deleted since; numbers are never reused): not imported"
        )
        return
    stage = stage_of(job, version, number)
    files = remote_files(job, version, number) if job.artifacts else []
    with tempfile.TemporaryDirectory(prefix="mlflow-import-") as folder:
        downloaded = [download(job, item, Path(folder)) for item in files]
        with contextlib.ExitStack() as opened, transaction.atomic():
            uploads = {
                item.path: Upload(opened.enter_context(path.open("rb")), sha256=sha256)
                for item, path, sha256 in downloaded
            }
            created = insert(job, model, number, wanted, uploads)
            apply_stage(job, created, stage, version.get("current_stage"))
            aliases = set_aliases(job, model, created, number)
    job.result.versions.append(number)
    job.result.files += len(downloaded)
    shown = [f"{len(downloaded)} file(s)"] if job.artifacts else []
    if stage != Stage.UNASSIGNED:
        shown.append(f"stage {stage}")
    if aliases:
        shown.append("aliases " + ", ".join(aliases))
    job.say(f"  v{number}: imported" + (f" ({'; '.join(shown)})" if shown else ""))


def insert(job: "ModelImport", model, number: int, wanted: dict[str, Any], uploads) -> ModelVersion:
    """The version with MLflow's number, in the caller's transaction: the model's
    sequence is moved to the number before it (never back), under its row lock."""
    lock_model_transitions(model)
    sequence = VersionSequence.objects.filter(model=model, last_number__lt=number)
    if not sequence.update(last_number=number - 1):
        raise Invalid(f"{model.name} v{number}: the number was taken meanwhile")
    created = version_create(actor=job.actor, model=model, artifacts=uploads, **wanted)
    if created.number != number:  # a defect: the row lock above should make it so
        raise RuntimeError(f"{model.name}: v{number} was registered as v{created.number}")
    return created


def apply_stage(
    job: "ModelImport", version: ModelVersion, stage: str, mlflow_stage: str | None
) -> None:
    """MLflow's stage, set at import (registry.services.imports.stage_import)."""
    if stage == version.stage:
        return
    stage_import(
        actor=job.actor,
        version=version,
        stage=stage,
        data={
            "from": job.source.url,
            "mlflow_stage": mlflow_stage,
            "comment": IMPORTED_STAGE_COMMENT,
        },
    )


def set_aliases(
    job: "ModelImport", model: RegisteredModel, version: ModelVersion, number: int
) -> list:
    done = []
    for alias in job.aliases.get(number, []):
        try:
            clean_alias_name(alias)
        except Invalid as exc:
            job.note(f"{model.name} alias {alias!r}: {exc.message}: not imported")
            continue
        current = Alias.objects.filter(model=model, name=alias).select_related("version")
        current = current.first()
        if current is not None and current.version_id != version.pk:
            job.note(
                f"{model.name} alias {alias}: points at v{current.version.number} in "
                f"Modelvault, at v{number} in MLflow: left as it is"
            )
            continue
        if current is None:
            alias_set(
                actor=job.actor,
                model=model,
                name=alias,
                version=version,
                comment=f"Imported from MLflow ({job.source.url}).",
            )
            done.append(alias)
            job.result.aliases.append(alias)
    return done


def complete_version(
    job: "ModelImport", model, current: ModelVersion, version: dict[str, Any]
) -> None:
    """A version imported before: add what is missing (aliases, files, tags, an empty
    description), report what differs, overwrite nothing."""
    number = current.number
    where = f"{model.name} v{number}"
    wanted = wanted_fields(job, version, number)
    changes = job.missing(
        where, current.tags, current.description, wanted["tags"], wanted["description"]
    )
    stage = stage_of(job, version, number)
    if stage != current.stage:
        job.note(
            f"{where}: in {current.stage} in Modelvault, {TO_MLFLOW_STAGE.get(stage, stage)} "
            "in MLflow: left as it is (a stage changes in Modelvault through review)"
        )
    if changes:
        version_update(actor=job.actor, version=current, **changes)
        job.result.filled.append(f"v{number} " + ", ".join(sorted(changes)))
        job.say(f"  v{number}: completed {', '.join(sorted(changes))}")
    aliases = set_aliases(job, model, current, number)
    if aliases:
        job.say(f"  v{number}: aliases {', '.join(aliases)}")
    if job.artifacts:
        complete_files(job, current, version)


# -- files ------------------------------------------------------------------------------


def remote_files(job: "ModelImport", version: dict[str, Any], number: int) -> list[RemoteFile]:
    where = f"{job.result.name} v{number}"
    uri = job.source.download_uri(job.result.name, number) or version.get("source") or ""
    remote = job.source.proxy_path(uri)
    if remote is None:
        job.note(
            f"{where}: its files at {uri or '(no URI)'} are not served by the MLflow "
            "server's artifact proxy: imported without them (the source is kept)"
        )
        return []
    files = []
    for item in job.source.files(remote):
        try:
            validation.artifact_path(item.path)
        except Invalid as exc:
            job.note(f"{where}: file {item.path!r} not imported: {exc.message}")
            continue
        files.append(item)
    return files


def download(job: "ModelImport", item: RemoteFile, folder: Path) -> tuple[RemoteFile, Path, str]:
    """One file into `folder`, chunk by chunk, with its SHA-256; a body shorter or longer
    than the listing said is refused (a transfer cut off)."""
    path = folder / f"{len(list(folder.iterdir()))}.part"
    digest, size = hashlib.sha256(), 0
    with path.open("wb") as out:
        for chunk in job.source.stream(item.remote):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if item.size is not None and size != item.size:
        raise SourceError(
            f"{item.remote}: received {size} bytes, the MLflow server listed {item.size}"
        )
    job.result.bytes += size
    return item, path, digest.hexdigest()


def complete_files(job: "ModelImport", current: ModelVersion, version: dict[str, Any]) -> None:
    where = f"{current.model.name} v{current.number}"
    stored = dict(Artifact.objects.filter(version=current).values_list("path", "blob__size"))
    for item in remote_files(job, version, current.number):
        if item.path in stored:
            if item.size is not None and stored[item.path] != item.size:
                job.note(f"{where}: file {item.path} differs from MLflow's: kept")
            continue
        try:
            artifact_put(
                actor=job.actor,
                version=current,
                path=item.path,
                source=job.source.stream(item.remote),
                expected_size=item.size,
            )
        except RegistryError as exc:
            job.note(f"{where}: file {item.path} not added: {exc.message}")
            continue
        job.result.files += 1
        job.result.filled.append(f"v{current.number} {item.path}")
        job.say(f"  v{current.number}: added {item.path}")
