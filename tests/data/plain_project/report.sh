#!/usr/bin/env bash
# a shell entry point: logs its arguments through the Python API
python -c 'import sys, jupyter_mltrack as mlflow; mlflow.set_tag("shell_args", " ".join(sys.argv[1:])); mlflow.log_metric("from_shell", 1.0); mlflow.end_run()' "$@"
