"""Copy registered models from a running MLflow server into an organization (docs/mlflow.md,
"Importing from an MLflow server"): `manage.py import_mlflow`.

Everything MLflow holds is read first; only then is anything written, so a bad URL or a
pattern that matches nothing changes nothing. Each version arrives whole in one transaction:
its row (with MLflow's number), its files (downloaded beforehand to a temporary folder,
streamed, never whole in memory), its stage and the aliases on it. A run killed part-way
leaves whole versions only, and the next run adds what is missing: versions, aliases, the
files of a version imported without them, and the model's one `model.imported` event. What
Modelvault already holds is never overwritten; a difference is reported instead.
Here: the run and each model; mlflow_api/import_versions.py: each version and its files;
mlflow_api/mlflow_source.py: the reading.
"""

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from mlflow_api.import_versions import complete_version, create_version, mlflow_tags
from mlflow_api.mapping import refuse_reserved_tag
from mlflow_api.mlflow_source import MlflowServer, SourceError
from registry import validation
from registry.errors import Invalid, RegistryError
from registry.models import (
    ModelVersion,
    Organization,
    RegisteredModel,
)
from registry.models.catalog import NAME_PATTERN
from registry.services.imports import model_imported, model_was_imported
from registry.services.registered_models import model_create, model_update

PROMPT_TAG = "mlflow.prompt.is_prompt"
MODEL_DESCRIPTION_MAX = 500


@dataclass
class ModelResult:
    """What one model's import did, and what it could not map."""

    name: str
    created: bool = False
    versions: list[int] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    aliases: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    not_mapped: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.versions or self.files or self.aliases or self.filled)


@dataclass
class ImportResult:
    models: list[ModelResult] = field(default_factory=list)
    not_mapped: list[str] = field(default_factory=list)

    def all_not_mapped(self) -> list[str]:
        return [*self.not_mapped, *(n for m in self.models for n in m.not_mapped)]


def select_models(models: list[dict[str, Any]], pattern: str | None) -> list[dict[str, Any]]:
    """The models whose MLflow name matches the shell-style `pattern` (all when None)."""
    if pattern is None:
        return models
    if not pattern.strip():
        raise Invalid("--model needs a pattern, such as fraud or 'fraud-*'")
    return [m for m in models if fnmatch.fnmatchcase(m.get("name", ""), pattern)]


def import_mlflow(
    *,
    actor,
    org: Organization,
    source: MlflowServer,
    pattern: str | None = None,
    artifacts: bool = False,
    say: Callable[[str], None] = print,
) -> ImportResult:
    """Import the models of `source` that match `pattern` into `org`, as `actor` (an admin
    of `org`; the caller checks). Raises SourceError or Invalid before writing anything
    when the server cannot be read or the pattern matches no model."""
    models = select_models(source.registered_models(), pattern)
    if not models:
        where = f" matches {pattern!r}" if pattern is not None else ""
        raise Invalid(f"no registered model on {source.url}{where}: nothing to import")
    result = ImportResult()
    plans = []
    for model in models:
        name = model.get("name", "")
        if (mlflow_tags(model).get(PROMPT_TAG) or "").lower() == "true":
            result.not_mapped.append(f"{name}: an MLflow prompt, not a model: not imported")
        elif not NAME_PATTERN.match(name):
            result.not_mapped.append(
                f"{name!r}: not a Modelvault model name (1-128 letters, digits, '.', '_' or "
                "'-', starting with a letter or digit): not imported"
            )
        else:
            plans.append((model, source.model_versions(name)))
    for line in result.not_mapped:
        say(f"not mapped: {line}")
    for model, versions in plans:
        try:
            outcome = ModelImport(actor, org, source, model, versions, artifacts, say).run()
        except RegistryError as exc:
            # A refusal from the registry (a concurrent change): this model stops, whole
            # versions stay, the others go on.
            line = f"{model['name']}: stopped: {exc.message}"
            result.not_mapped.append(line)
            say(f"  not mapped: {line}")
            continue
        except SourceError as exc:
            raise SourceError(
                f"{exc} (while importing {model['name']}; every version imported before this "
                "is whole: run the command again to finish)",
                partial=True,
            ) from None
        result.models.append(outcome)
    return result


class ModelImport:
    """One MLflow model into `org`: the model, then each version in MLflow's order."""

    def __init__(self, actor, org, source, model, versions, artifacts, say) -> None:
        self.actor, self.org, self.source = actor, org, source
        self.mlflow, self.versions = model, versions
        self.artifacts, self.say = artifacts, say
        self.result = ModelResult(name=model["name"])
        # The aliases MLflow points at each version number.
        self.aliases: dict[int, list[str]] = {}
        for item in model.get("aliases") or []:
            self.aliases.setdefault(int(item["version"]), []).append(item["alias"])

    def note(self, line: str) -> None:
        self.result.not_mapped.append(line)
        self.say(f"  not mapped: {line}")

    def run(self) -> ModelResult:
        name = self.result.name
        model = RegisteredModel.objects.select_related("org").filter(org=self.org, name=name)
        model = model.first()
        if model is not None and not self._is_ours(model):
            return self.result
        if model is None:
            model = self._create_model()
        else:
            self._complete_model(model)
        self.say(f"model {name}: {len(self.versions)} version(s) in MLflow")
        for version in self.versions:
            number = int(version["version"])
            if version.get("status", "READY") != "READY":
                self.note(f"{name} v{number}: MLflow status {version.get('status')}: skipped")
                continue
            current = ModelVersion.objects.filter(model=model, number=number).first()
            if current is None:
                create_version(self, model, version, number)
            else:
                complete_version(self, model, current, version)
        self._record(model)
        return self.result

    # -- the model --------------------------------------------------------------------------

    def _is_ours(self, model: RegisteredModel) -> bool:
        """A model of this name already in Modelvault is continued only when each of its
        versions is the MLflow version of the same number (same source): a model made in
        Modelvault, or from another server, is left alone."""
        sources = {int(v["version"]): v.get("source") or "" for v in self.versions}
        stored = ModelVersion.objects.filter(model=model).values_list("number", "source_run")
        for number, source_run in stored.order_by("number"):
            if sources.get(number) != source_run:
                self.note(
                    f"{model.name}: already in {self.org.slug}, and its v{number} is not MLflow's "
                    f"v{number} (another source, or none in MLflow): left alone"
                )
                return False
        return True

    def _create_model(self) -> RegisteredModel:
        name = self.result.name
        description, readme = self.description()
        if readme:
            self.note(
                f"{name}: description longer than {MODEL_DESCRIPTION_MAX} characters: "
                "shortened, the whole text is the model's readme"
            )
        model = model_create(
            actor=self.actor,
            org=self.org,
            name=name,
            description=description,
            readme=readme,
            tags=self.clean_tags(mlflow_tags(self.mlflow), name, reserved=False),
        )
        self.result.created = True
        self.say(f"model {name}: created")
        return model

    def description(self) -> tuple[str, str]:
        """MLflow's model description as Modelvault's (at most 500 characters) and readme
        (the whole text, when it is longer)."""
        text = self.mlflow.get("description") or ""
        if len(text) <= MODEL_DESCRIPTION_MAX:
            return text, ""
        return text[: MODEL_DESCRIPTION_MAX - 1] + "…", text

    def _complete_model(self, model: RegisteredModel) -> None:
        """A model imported before: add the tags it lacks and a description it lacks."""
        changes = self.missing(
            model.name,
            model.tags,
            model.description,
            self.clean_tags(mlflow_tags(self.mlflow), model.name, reserved=False),
            self.description()[0],
        )
        if changes:
            model_update(actor=self.actor, model=model, **changes)
            self.result.filled.append("model " + ", ".join(sorted(changes)))
            self.say(f"model {model.name}: completed {', '.join(sorted(changes))}")

    def missing(self, where, tags, description, wanted_tags, wanted_description) -> dict:
        """The tags and description to add to what Modelvault holds; differences are
        reported, never overwritten."""
        changes: dict[str, Any] = {}
        missing = {k: v for k, v in wanted_tags.items() if k not in tags}
        differing = sorted(k for k, v in wanted_tags.items() if k in tags and tags[k] != v)
        if missing:
            changes["tags"] = {**tags, **missing}
        if differing:
            self.note(f"{where}: tags {', '.join(differing)} differ from MLflow's: kept")
        if wanted_description and not description:
            changes["description"] = wanted_description
        elif wanted_description and description != wanted_description:
            self.note(f"{where}: description differs from MLflow's: kept")
        return changes

    def clean_tags(self, tags: dict[str, str], where: str, *, reserved: bool) -> dict[str, str]:
        kept = {}
        for key, value in tags.items():
            try:
                if reserved:
                    refuse_reserved_tag(key)
                validation.tags({key: value})
            except Invalid as exc:
                self.note(f"{where}: tag {key!r} not imported: {exc.message}")
                continue
            kept[key] = value
        return kept

    # -- the event --------------------------------------------------------------------------

    @transaction.atomic
    def _record(self, model: RegisteredModel) -> None:
        """One `model.imported` per model: written when this run changed the model, or when
        a run killed before writing it left the model without one."""
        if model_was_imported(model) and not self.result.changed:
            self.say(f"model {model.name}: nothing to do")
            return
        outcome = self.result
        model_imported(
            actor=self.actor,
            model=model,
            data={
                "from": self.source.url,
                "mlflow_name": self.mlflow["name"],
                "created": outcome.created,
                "versions": outcome.versions,
                "files": outcome.files,
                "aliases": outcome.aliases,
                "completed": outcome.filled,
                "not_mapped": outcome.not_mapped,
            },
        )
        self.say(
            f"model {model.name}: imported {len(outcome.versions)} version(s), "
            f"{outcome.files} file(s), {len(outcome.aliases)} alias(es)"
        )
