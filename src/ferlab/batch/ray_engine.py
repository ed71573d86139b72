"""The Ray engine: a job's chunks as a Ray Data pipeline on a pool of actors.

``from_items(chunks)`` → ``map_batches(ChunkWorker)`` on an actor pool, one actor per CPU, each
loading the model once (ONNX Runtime, one thread) and processing one chunk per call with
:func:`~ferlab.batch.jobs.run_chunk`: read and decode each image, detect and align its faces,
classify the chunk's faces in one batch, rows out (and, with an output folder, the chunk's
Parquet file written atomically by the actor itself). Decoding, detection and classification run
in the same actor because on CPUs that is where they are cheapest: separate stages would move
every decoded image through the object store and split the CPUs between them.

Ray Data restarts a killed actor and retries its chunk (``max_restarts`` and ``max_task_retries``
unlimited for actor pools); the retried chunk replaces its own file, so no input is lost or
written twice. Without ``address`` (or ``RAY_ADDRESS``) a local Ray is started with ``workers``
CPUs; a Ray already initialised in this process is used as it is.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ferlab.batch.jobs import Settings, Unit, arrow_rows, run_chunk
from ferlab.errors import FerlabError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ferlab.batch.store import Store

__all__ = ["ChunkWorker", "chunk_dataset", "connect", "import_ray"]

RAY_EXTRA = 'pip install "ferlab[ray]"'


def import_ray() -> Any:
    """``ray`` with Ray Data, or a clear error saying how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401 (Ray Data is a separate part of the ray package)
    except ImportError:
        raise FerlabError(
            f"the ray engine needs Ray Data, which this install lacks: {RAY_EXTRA}"
        ) from None
    return ray


def connect(address: str | None = None, workers: int | None = None) -> int:
    """Join the Ray cluster at ``address`` (or ``RAY_ADDRESS``), or start a local Ray with
    ``workers`` CPUs (default: all of this machine's); returns the number of actors to run."""
    ray = import_ray()
    if workers is not None and workers < 1:
        raise FerlabError(f"workers must be >= 1, got {workers}")
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
        # Ray's C++ core logs warnings on stderr (e.g. about actor restarts) that say nothing
        # to a user of ferlab; errors that matter surface as exceptions.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        try:
            if address:
                _use_token()
                ray.init(address=address, **quiet)
            else:
                # "local": a new Ray of its own, even where `ray start` runs a cluster here.
                cpus = workers or os.cpu_count() or 1
                ray.init("local", num_cpus=cpus, include_dashboard=False, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise FerlabError(f"cannot start or join {where}: {exc}") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ferlab draws its own (rich) bar
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if workers is not None and workers > cpus:
        raise FerlabError(f"{workers} workers asked for, but the Ray cluster has {cpus} CPUs")
    return workers or max(cpus, 1)


def _use_token() -> None:
    """Send the cluster's authentication token when one is at hand: ``ray start --head``
    enables token authentication and saves the token in ``~/.ray/auth_token``, but a process
    joining by address sends it only in token mode. Ray's own switch for this is private, so
    a Ray without it is left as it is (``RAY_AUTH_MODE=token`` does the same by hand)."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


class ChunkWorker:
    """One actor: builds its recognizer once, then turns chunks into rows (and files)."""

    def __init__(self, settings: Settings, store: Store | None) -> None:
        self.rec = settings.recognizer()
        self.store = store

    def __call__(self, batch: dict[str, Any]) -> pa.Table:
        import pyarrow as pa

        out = []
        for payload in batch["chunk"]:
            rows = run_chunk(self.rec, [Unit(**u) for u in json.loads(payload)])
            if self.store is not None:
                self.store.write(rows)
            out.append(arrow_rows(rows, self.rec.labels))
        return pa.concat_tables(out)


def chunk_dataset(
    chunks: Sequence[Sequence[Unit]], settings: Settings, store: Store | None, workers: int
) -> Any:
    """The lazy Ray Dataset of the chunks' rows (call :func:`connect` first)."""
    ray = import_ray()
    items = [{"chunk": json.dumps([asdict(u) for u in chunk])} for chunk in chunks]
    ds = ray.data.from_items(items, override_num_blocks=max(len(items), 1))
    return ds.map_batches(
        ChunkWorker,
        fn_constructor_kwargs={"settings": settings, "store": store},
        batch_size=1,
        batch_format="numpy",
        # One chunk at a time per actor: a chunk is seconds of work, so queueing more on an
        # actor only leaves the others idle at the end of the job.
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
        num_cpus=1,
    )


def run(
    chunks: Sequence[Sequence[Unit]],
    settings: Settings,
    store: Store | None,
    *,
    address: str | None = None,
    workers: int | None = None,
) -> Iterator[pd.DataFrame]:
    """Run the chunks on Ray; yields each chunk's rows as it completes."""
    if not chunks:
        return
    size = connect(address, workers)
    ds = chunk_dataset(chunks, settings, store, min(size, len(chunks)))
    for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        yield table.to_pandas()
