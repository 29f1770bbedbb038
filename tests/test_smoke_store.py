def test_roundtrip(mlflow):
    with mlflow.start_run(run_name="r1") as run:
        mlflow.log_params({"n_estimators": 100})
        for i in range(5):
            mlflow.log_metric("loss", 1 / (i + 1), step=i)
    got = mlflow.get_run(run.info.run_id)
    assert got.data.params == {"n_estimators": "100"}
    assert got.data.metrics == {"loss": 0.2}
    assert got.info.status == "FINISHED"
