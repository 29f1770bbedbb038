"""Quickstart: MLflow-style tracking code on the embedded store (no server).

Trains a few RandomForest variants on a scikit-learn data set, logs params, metrics, a
training curve and a figure, then searches for the best run.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

import jupyter_mltrack as mlflow

data = load_breast_cancer(as_frame=True)
X, y = data.data, data.target
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)

mlflow.set_experiment("quickstart-breast-cancer")

for n_estimators, max_depth in [(10, 2), (50, 4), (100, 6)]:
    with mlflow.start_run(run_name=f"rf-{n_estimators}-{max_depth}"):
        params = {"n_estimators": n_estimators, "max_depth": max_depth}
        mlflow.log_params(params)
        model = RandomForestClassifier(**params, random_state=42, warm_start=True)
        # a training curve: grow the forest and log accuracy as it grows
        for step, trees in enumerate(range(5, n_estimators + 1, 5)):
            model.set_params(n_estimators=trees).fit(X_train, y_train)
            mlflow.log_metric("test_accuracy", accuracy_score(y_test, model.predict(X_test)), step=step)
        preds = model.predict(X_test)
        mlflow.log_metric("accuracy", accuracy_score(y_test, preds))
        mlflow.log_metric("f1_score", f1_score(y_test, preds, average="weighted"))
        fig, ax = plt.subplots(figsize=(6, 6))
        pd.Series(model.feature_importances_, index=X.columns).sort_values().tail(10).plot.barh(ax=ax)
        plt.tight_layout()
        mlflow.log_figure(fig, "feature_importance.png")
        plt.close(fig)

best = mlflow.search_runs(
    filter_string="metrics.f1_score > 0.85 AND params.n_estimators > 20",
    order_by=["metrics.f1_score DESC"],
)
print(best[["run_id", "params.n_estimators", "params.max_depth", "metrics.f1_score"]].to_string(index=False))
print(f"\nRuns are stored in {mlflow.get_tracking_uri()}")
print("Browse them:  .venv/bin/mltrack runs list")
print("In JupyterLab: .venv/bin/jupyter lab  (then `import jupyter_mltrack as mlflow; mlflow.search_runs()`)")
