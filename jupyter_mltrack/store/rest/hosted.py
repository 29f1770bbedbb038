"""Tracking URIs of hosted MLflow services that need their vendor's plugin to resolve.

``databricks[://profile]`` and ``azureml://...`` are not addresses but names that MLflow's
vendor plugins turn into an https URL plus credentials. Both services speak the MLflow REST
protocol, so jupyter_mltrack reaches them through their https URL and a token; these messages
say how, instead of failing obscurely (or creating a folder called "databricks").
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from jupyter_mltrack.exceptions import InvalidParameterValue

HOSTED_SCHEMES = ("databricks", "databricks-uc", "azureml")


def hosted_uri_error(uri: str) -> InvalidParameterValue | None:
    """A clear error for a Databricks or Azure ML tracking URI, else None."""
    text = uri.strip()
    scheme = urlparse(text).scheme.lower()
    if text.lower() in ("databricks", "databricks-uc") or scheme in ("databricks", "databricks-uc"):
        return InvalidParameterValue(_databricks(text))
    if scheme == "azureml":
        return InvalidParameterValue(_azureml(text))
    return None


def _databricks(uri: str) -> str:
    host = os.environ.get("DATABRICKS_HOST", "").strip().rstrip("/")
    if host and "://" not in host:
        host = "https://" + host
    if host:
        how = (
            f"DATABRICKS_HOST is set, so: set_tracking_uri({host!r}) (or "
            f"MLTRACK_TRACKING_URI={host}) and MLFLOW_TRACKING_TOKEN set to the value of "
            "DATABRICKS_TOKEN."
        )
    else:
        how = (
            "Set DATABRICKS_HOST and DATABRICKS_TOKEN (a personal access token), then use the "
            "workspace's https URL: set_tracking_uri('https://<workspace>.cloud.databricks.com') "
            "with MLFLOW_TRACKING_TOKEN=<the token>."
        )
    return (
        f"Tracking URI {uri!r} names Databricks' hosted MLflow through its CLI profile, which "
        "needs the Databricks SDK that jupyter_mltrack does not include. Databricks' tracking "
        f"server speaks the MLflow REST protocol, so reach it over https instead. {how} "
        "Runs and the workspace model registry then work; artifacts kept on DBFS or in Unity "
        "Catalog volumes are not readable from jupyter_mltrack."
    )


def _azureml(uri: str) -> str:
    rest = uri.split("://", 1)[1] if "://" in uri else ""
    https = f"https://{rest}" if rest else "https://<region>.api.azureml.ms/mlflow/v1.0/..."
    return (
        f"Tracking URI {uri!r} is an Azure ML workspace's MLflow URI: MLflow turns it into an "
        "https URL with an Azure AD token through the azureml-mlflow plugin, which "
        "jupyter_mltrack does not include. The workspace speaks the MLflow REST protocol, so "
        f"use its https form, set_tracking_uri({https!r}), with MLFLOW_TRACKING_TOKEN set to "
        "an Azure AD access token (e.g. `az account get-access-token --query accessToken -o "
        "tsv`; tokens expire after about an hour, and the variable is read at every call)."
    )
