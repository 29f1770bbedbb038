import time

import jupyter_mltrack as mlflow

mlflow.log_metric("started", 1.0)
print("sleeping", flush=True)
time.sleep(120)
