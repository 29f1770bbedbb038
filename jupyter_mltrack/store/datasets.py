"""Dataset inputs on the SQL store: ``log_inputs`` and the inputs of runs.

A dataset is stored once per experiment and (name, digest): the first logging keeps its
source, schema and profile, later runs only point at it. Logging a dataset to a run again
merges the input's tags (a new value for a key wins).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from jupyter_mltrack import validation
from jupyter_mltrack.entities import Dataset, DatasetInput, InputTag
from jupyter_mltrack.store.schema import datasets, input_tags, run_inputs, runs


class SqlDatasets:
    """Dataset-input operations over a SqlStore's engine (same database, same transactions)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        """Record ``inputs`` of ``run_id`` in one transaction (all or nothing)."""
        inputs = validation.dataset_inputs(inputs)
        run_key = self.store.writable_run_key(run_id)
        if not inputs:
            return
        insert = self.store._insert
        with self.store._write() as conn:
            experiment = conn.execute(
                select(runs.c.experiment_id).where(runs.c.id == run_key)
            ).scalar_one()
            for item in inputs:
                dataset_key = self._dataset_key(conn, experiment, item.dataset)
                conn.execute(
                    insert(run_inputs)
                    .values(run_id=run_key, dataset_id=dataset_key)
                    .on_conflict_do_nothing()
                )
                tags = {t.key: t.value for t in item.tags}  # the last value of a key wins
                if tags:
                    stmt = insert(input_tags)
                    conn.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["run_id", "dataset_id", "key"],
                            set_={"value": stmt.excluded.value},
                        ),
                        [
                            {"run_id": run_key, "dataset_id": dataset_key, "key": k, "value": v}
                            for k, v in tags.items()
                        ],
                    )

    def _dataset_key(self, conn: Connection, experiment: int, dataset: Dataset) -> int:
        found = select(datasets.c.id).where(
            datasets.c.experiment_id == experiment,
            datasets.c.name == dataset.name,
            datasets.c.digest == dataset.digest,
        )
        key = conn.execute(found).scalar()
        if key is None:
            conn.execute(
                self.store._insert(datasets)
                .values(
                    experiment_id=experiment,
                    name=dataset.name,
                    digest=dataset.digest,
                    source_type=dataset.source_type,
                    source=dataset.source,
                    schema=dataset.schema,
                    profile=dataset.profile,
                )
                .on_conflict_do_nothing()  # another process stored it first: use theirs
            )
            key = conn.execute(found).scalar_one()
        return key

    def inputs_of(self, conn: Connection, run_keys: Sequence[int]) -> dict[int, list[DatasetInput]]:
        """``{run_key: [DatasetInput, ...]}`` for runs (one query per 500 runs, a second only when some have inputs), ordered by
        dataset name and digest; runs without inputs are absent."""
        out: dict[int, list[DatasetInput]] = {}
        for start in range(0, len(run_keys), 500):
            chunk = list(run_keys[start : start + 500])
            rows = conn.execute(
                select(run_inputs.c.run_id, datasets)
                .join(datasets, datasets.c.id == run_inputs.c.dataset_id)
                .where(run_inputs.c.run_id.in_(chunk))
                .order_by(run_inputs.c.run_id, datasets.c.name, datasets.c.digest)
            ).all()
            if not rows:  # the usual page of a search: no inputs, so no second query
                continue
            tags: dict[tuple[int, int], list[InputTag]] = {}
            with_inputs = sorted({r.run_id for r in rows})
            for t in conn.execute(
                select(input_tags)
                .where(input_tags.c.run_id.in_(with_inputs))
                .order_by(input_tags.c.key)
            ):
                tags.setdefault((t.run_id, t.dataset_id), []).append(InputTag(t.key, t.value))
            for r in rows:
                dataset = Dataset(r.name, r.digest, r.source_type, r.source, r.schema, r.profile)
                entry = DatasetInput(dataset, tags.get((r.run_id, r.id), []))
                out.setdefault(r.run_id, []).append(entry)
        return out
