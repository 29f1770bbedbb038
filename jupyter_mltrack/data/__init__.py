"""``mlflow.data``: datasets to log as run inputs (``log_input``) with their digest and source.

pandas and numpy are imported only when a dataset is built from them.
"""

from __future__ import annotations

from jupyter_mltrack.data.dataset import (
    Dataset,
    NumpyDataset,
    PandasDataset,
    from_numpy,
    from_pandas,
)
from jupyter_mltrack.data.sources import (
    CodeDatasetSource,
    DatasetSource,
    HTTPDatasetSource,
    UriDatasetSource,
)

__all__ = [
    "CodeDatasetSource",
    "Dataset",
    "DatasetSource",
    "HTTPDatasetSource",
    "NumpyDataset",
    "PandasDataset",
    "UriDatasetSource",
    "from_numpy",
    "from_pandas",
]
