"""A project without an MLproject file: `mltrack run . -e main.py -P k=v` passes --k v."""

import sys

import jupyter_mltrack as mlflow

mlflow.log_metric("argc", len(sys.argv) - 1)
mlflow.set_tag("args", " ".join(sys.argv[1:]))
mlflow.end_run()
