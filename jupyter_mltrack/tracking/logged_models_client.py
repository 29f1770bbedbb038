"""The Client's logged-model methods (MLflow 3's names): create, finalize, search, tags, outputs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from jupyter_mltrack.entities import LoggedModel, LoggedModelOutput, PagedList
from jupyter_mltrack.exceptions import InvalidParameterValue, MlflowException


class LoggedModelMethods:
    """Mixed into ``Client``; needs ``self.store`` and ``self.tracking_uri``."""

    store: Any
    tracking_uri: str

    def _logged_models(self) -> Any:
        found = getattr(self.store, "logged_models", None)
        if found is None and getattr(self.store, "http", None) is not None:
            # A tracking server's store (RestStore): MLflow's logged-model endpoints.
            from jupyter_mltrack.store.rest.logged_models import RestLoggedModels

            found = RestLoggedModels(self.store.http)
        if found is None:
            raise MlflowException(
                f"The store {self.tracking_uri} does not keep logged models (MLflow 3)."
            )
        return found

    def create_logged_model(
        self,
        experiment_id: str,
        name: str | None = None,
        source_run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        model_type: str | None = None,
    ) -> LoggedModel:
        """Create a logged model (status PENDING) in ``experiment_id``; a name is generated if
        none is given. Its files go under ``model.artifact_location``."""
        return self._logged_models().create_logged_model(
            str(experiment_id), name, source_run_id, tags, params, model_type
        )

    def get_logged_model(self, model_id: str) -> LoggedModel:
        """The logged model with id ``model_id`` (``m-...``)."""
        _check_id(model_id)
        return self._logged_models().get_logged_model(model_id)

    def finalize_logged_model(self, model_id: str, status: Any) -> LoggedModel:
        """Set the final status: ``"READY"`` once its files are uploaded, or ``"FAILED"``."""
        _check_id(model_id)
        return self._logged_models().finalize_logged_model(model_id, status)

    def delete_logged_model(self, model_id: str) -> None:
        """Mark a logged model deleted (its files stay until garbage collection)."""
        _check_id(model_id)
        self._logged_models().delete_logged_model(model_id)

    def set_logged_model_tags(self, model_id: str, tags: Mapping[str, Any]) -> None:
        """Set (or overwrite) tags on a logged model."""
        _check_id(model_id)
        self._logged_models().set_logged_model_tags(model_id, tags)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        _check_id(model_id)
        self._logged_models().delete_logged_model_tag(model_id, key)

    def log_model_params(self, model_id: str, params: Mapping[str, Any]) -> None:
        """Log params on a logged model (a param never changes value once logged)."""
        _check_id(model_id)
        self._logged_models().log_logged_model_params(model_id, params)

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        datasets: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        order_by: Sequence[Mapping[str, Any] | str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        """Logged models of ``experiment_ids`` matching ``filter_string`` (``name``, ``status``,
        ``source_run_id``, ``model_type``, timestamps, ``params.``, ``tags.``), newest first.

        ``order_by`` items are MLflow's dicts (``{"field_name": "name", "ascending": True}``) or
        strings (``"name ASC"``).
        """
        return self._logged_models().search_logged_models(
            [str(e) for e in experiment_ids],
            filter_string,
            datasets,
            max_results,
            order_by,
            page_token,
        )

    def log_outputs(self, run_id: str, models: Sequence[LoggedModelOutput]) -> None:
        """Record logged models as outputs of a run (``run.outputs.model_outputs`` in MLflow)."""
        self._logged_models().log_outputs(run_id, list(models))

    def log_model_artifact(self, model_id: str, local_path: str) -> None:
        """Upload one local file into a logged model's artifacts."""
        self._model_repo(model_id).log_artifact(os.fspath(local_path))

    def log_model_artifacts(self, model_id: str, local_dir: str) -> None:
        """Upload a local folder's contents into a logged model's artifacts."""
        self._model_repo(model_id).log_artifacts(os.fspath(local_dir))

    def _model_repo(self, model_id: str) -> Any:
        from jupyter_mltrack.store.artifacts import get_artifact_repository

        model = self.get_logged_model(model_id)
        return get_artifact_repository(model.artifact_location, self.tracking_uri)


def _check_id(model_id: object) -> None:
    if not isinstance(model_id, str) or not model_id:
        raise InvalidParameterValue(f"A logged model id (m-...) is required, got {model_id!r}.")
