"""Sample project: fit y = w * x on data.csv by gradient descent, logging into the run that
`mltrack run` exported."""

import argparse
import csv
import sys

import jupyter_mltrack as mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float, default=0.5)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--label", default="")
parser.add_argument("--data", default="data.csv")
args, extra = parser.parse_known_args()

with open(args.data) as fh:
    rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(fh)]

with mlflow.start_run() as run:
    mlflow.set_tag("python_executable", sys.executable)
    mlflow.set_tag("label_seen", args.label)
    mlflow.set_tag("extra_args", " ".join(extra))
    mlflow.log_param("rows", len(rows))
    w = 0.0
    for epoch in range(args.epochs):
        grad = sum(2 * (w * x - y) * x for x, y in rows) / len(rows)
        w -= args.alpha * 0.05 * grad
        loss = sum((w * x - y) ** 2 for x, y in rows) / len(rows)
        mlflow.log_metric("loss", loss, step=epoch)
    mlflow.log_metric("w", w)
    print(f"run {run.info.run_id}: w={w:.4f} loss={loss:.4f}")
