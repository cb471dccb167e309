"""The one batched-inference loop that every skmm encoder runs its model through.

Items are prepared (decoded, resized, tokenised...) in a torch ``DataLoader``
— in worker processes when ``num_workers > 0`` — and streamed to the model one
batch at a time, so a dataset is never decoded into memory whole. A failure to
prepare one item does not stop the loop: it is recorded with its position and
the encoder's ``on_error`` policy decides what happens.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ._device import autocast


def failure_message(exc):
    """How a row that could not be prepared or decoded is reported (the same words on every path).

    Parameters
    ----------
    exc : Exception
        What preparing or decoding the row raised.

    Returns
    -------
    message : str

    Examples
    --------
    >>> from skmm._batching import failure_message
    >>> failure_message(OSError("cannot identify image file"))
    'OSError: cannot identify image file'
    """
    return f"{type(exc).__name__}: {exc}"


class _PreparedItems(Dataset):
    """Map-style dataset that prepares item ``i`` on access and never raises.

    With ``threads > 1`` a whole batch of items is prepared at once by a pool
    of threads (the DataLoader calls ``__getitems__``); Pillow and the
    tokenisers release the GIL while they work.
    """

    def __init__(self, items, prepare, threads=1):
        self.items = items
        self.prepare = prepare
        self.threads = threads

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        try:
            return i, self.prepare(self.items[i]), None
        except Exception as exc:  # reported per row by the caller, never swallowed
            return i, None, failure_message(exc)

    def __getitems__(self, indices):
        if self.threads <= 1 or len(indices) <= 1:
            return [self[i] for i in indices]
        with ThreadPoolExecutor(self.threads, thread_name_prefix="skmm-prepare") as pool:
            return list(pool.map(self.__getitem__, indices))


class _CollateGood:
    """Collate the items that prepared successfully; pass the failures through."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, samples):
        good = [(i, value) for i, value, error in samples if error is None]
        failed = [(i, error) for i, value, error in samples if error is not None]
        positions = [i for i, _ in good]
        batch = self.collate([value for _, value in good]) if good else None
        return positions, batch, failed


def prefetch_in_thread(iterable, depth=2):
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead.

    With ``num_workers=0`` the DataLoader decodes in the calling thread, in
    series with the model. Pillow and torch release the GIL, so on a GPU a
    thread lets the next batch decode while this one runs, without starting
    worker processes. (Not on the CPU: there the thread would compete with
    torch's own threads for the cores.)

    Parameters
    ----------
    iterable : iterable
        What to iterate; its exceptions are raised in the calling thread.
    depth : int, default=2
        How many items the thread may get ahead.

    Yields
    ------
    item : object
        The items of ``iterable``, in order.

    Examples
    --------
    >>> from skmm._batching import prefetch_in_thread
    >>> list(prefetch_in_thread(range(4)))
    [0, 1, 2, 3]
    """
    items = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce():
        try:
            for item in iterable:
                if stop.is_set():
                    return
                items.put(item)
        except BaseException as exc:  # handed to the consumer, raised there
            items.put(exc)
            return
        items.put(done)

    thread = threading.Thread(target=produce, name="skmm-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                items.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.01)


def to_device(batch, device):
    """Move a tensor, or a dict / list of tensors, to ``device`` without blocking.

    Parameters
    ----------
    batch : tensor, dict, list or tuple of tensors, or any other object
        What to move; other objects are returned as they are.
    device : torch.device

    Returns
    -------
    batch : same type as ``batch``

    Examples
    --------
    >>> import torch
    >>> from skmm._batching import to_device
    >>> to_device({"ids": torch.ones(2)}, torch.device("cpu"))["ids"].device
    device(type='cpu')
    """
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


def _joinable(batch):
    return torch.is_tensor(batch) or hasattr(type(batch), "concat")


def _join(chunks):
    return torch.cat(chunks) if torch.is_tensor(chunks[0]) else type(chunks[0]).concat(chunks)


def _chunk_loader(items, prepare, collate, device, batch_size, num_workers):
    """The DataLoader that prepares ``items`` in chunks of positions: ``(positions, batch, failures)``."""
    # Worker processes prepare small chunks, joined into model batches on the device: a worker that
    # had to decode a whole 256-image batch before anything flowed made start-up dominate on a GPU.
    chunk_size = batch_size if num_workers == 0 else max(1, min(batch_size, 32))
    # Without worker processes, each batch is prepared by as many threads as torch computes with. On
    # the CPU that happens between forwards, never beside one: a decode thread running next to torch's
    # threads stalls every parallel op it preempts (docs/performance.md has the measured cost). On a GPU
    # the model does not need the cores, so the next batch is also prepared ahead, in a background
    # thread, while one runs.
    threads = torch.get_num_threads() if num_workers == 0 else 1
    return DataLoader(
        _PreparedItems(items, prepare, threads=threads),
        batch_size=chunk_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_CollateGood(collate),
        pin_memory=device.type == "cuda",
        # Workers decode ahead of the model: two batches each keeps it fed.
        prefetch_factor=2 if num_workers > 0 else None,
    )


class _BatchedRun:
    """What one :func:`run_batched` call has gathered so far, and the steps that add to it.

    Prepared chunks wait on the device until they make a model batch; the
    model's outputs wait there too and are copied back in groups (one copy
    per batch would stall a GPU on every batch), into ``embeddings``, which
    is made once the first output shows the width.
    """

    # On a GPU, outputs wait on the device until this many batches have run.
    _OUTPUTS_PER_COPY = 16

    def __init__(self, n_items, forward, device, batch_size):
        self.n_items = n_items
        self.forward = forward
        self.device = device
        self.batch_size = batch_size
        self.embeddings = None  # made by the first output copied back: its width is unknown before
        self.failures = {}  # position -> error message
        self.outputs = []  # (positions, output on the device), not yet copied back
        self.chunks, self.chunk_positions = [], []  # prepared on the device, not yet run

    def add_chunk(self, positions, batch, failed):
        """Record a chunk's failures and queue its prepared items; run the model once a batch is full."""
        self.failures.update(failed)
        if batch is None:  # every item of the chunk failed
            return
        batch = to_device(batch, self.device)
        self.chunks.append(batch)
        self.chunk_positions.append(positions)
        # Token dicts are padded per chunk, so one chunk is one batch; tensors are joined.
        if not _joinable(batch) or sum(map(len, self.chunk_positions)) >= self.batch_size:
            self.run_model()

    def run_model(self):
        """Run the model on the queued chunks as one batch and keep its output (and row failures)."""
        batch = self.chunks[0] if len(self.chunks) == 1 else _join(self.chunks)
        positions = sum(self.chunk_positions, [])
        output = self.forward(batch)
        if isinstance(output, tuple) and len(output) == 2 and isinstance(output[1], dict):
            output, failed_rows = output
            self.failures.update({positions[row]: message for row, message in failed_rows.items()})
        self.outputs.append((positions, output))
        self.chunks.clear()
        self.chunk_positions.clear()
        if self.device.type == "cpu" or len(self.outputs) >= self._OUTPUTS_PER_COPY:
            self.copy_back()

    def finish(self):
        """Run the model on what is left of the last batch."""
        if self.chunks:
            self.run_model()

    def copy_back(self):
        """Copy the waiting outputs to ``embeddings``, at their items' positions."""
        for positions, output in self.outputs:
            if isinstance(output, (list, tuple)) or output.ndim != 2:
                self._store_per_item(positions, output)
            else:
                self._store_rows(positions, output)
        self.outputs.clear()

    def _store_per_item(self, positions, output):
        """Per-item arrays of any shape: the embeddings become a list."""
        if self.embeddings is None:
            self.embeddings = [None] * self.n_items
        for position, value in zip(positions, output):
            self.embeddings[position] = value.float().cpu().numpy()

    def _store_rows(self, positions, output):
        """One row per item: the embeddings are one array, NaN where an item failed."""
        output = output.float().cpu().numpy()
        if self.embeddings is None:
            self.embeddings = np.full((self.n_items, output.shape[1]), np.nan, dtype=np.float32)
        self.embeddings[positions] = output

    def result(self):
        """``(embeddings, failures)``, once every output is copied back."""
        self.copy_back()
        if self.embeddings is None:  # every item failed: the width is unknown here
            self.embeddings = np.full((self.n_items, 0), np.nan, dtype=np.float32)
        return self.embeddings, self.failures


def run_batched(
    items,
    *,
    prepare,
    collate,
    forward,
    device,
    autocast_dtype=None,
    batch_size=32,
    num_workers=0,
    progress=False,
    desc=None,
    unit="item",
):
    """Embed ``items`` in batches and return ``(embeddings, failures)``.

    Parameters
    ----------
    items : list
        The raw items, in output order.
    prepare : callable
        Picklable ``item -> sample`` run in the DataLoader (decode, resize...).
    collate : callable
        ``list of samples -> batch`` (a tensor or a dict of tensors).
    forward : callable
        ``batch on device -> (n, d) tensor``; runs under ``torch.inference_mode``
        and autocast with ``autocast_dtype``. It may instead return
        ``(tensor, {row in batch: error message})`` for items that only fail
        there (decoded on the device, say): their rows are reported as failures.
        A tensor of another rank, or a list of per-item tensors (token states
        of different lengths, say), makes the result a list of per-item arrays.
        A batch that is not a tensor is joined from chunks by its type's
        ``concat(list_of_batches)`` when it has one; otherwise one chunk is one batch.
    device : torch.device
    autocast_dtype : torch.dtype or None
    batch_size, num_workers : int
    progress : bool
        Show a tqdm bar that counts items.
    desc : str, optional
        The bar's label.
    unit : str
        What the bar counts ("image", "text").

    Returns
    -------
    embeddings : ndarray of shape (len(items), d), float32, or list
        Rows of failed items are NaN (None in a list).
    failures : dict
        ``position -> error message`` for items that could not be prepared.

    Examples
    --------
    >>> import torch
    >>> from skmm._batching import run_batched
    >>> embeddings, failures = run_batched(
    ...     ["1", "2", "three"], prepare=float, collate=torch.tensor,
    ...     forward=lambda batch: torch.stack([batch, 2 * batch], dim=1), device=torch.device("cpu"))
    >>> embeddings
    array([[ 1.,  2.],
           [ 2.,  4.],
           [nan, nan]], dtype=float32)
    >>> failures
    {2: "ValueError: could not convert string to float: 'three'"}
    """
    loader = _chunk_loader(items, prepare, collate, device, batch_size, num_workers)
    run = _BatchedRun(len(items), forward, device, batch_size)
    with torch.inference_mode(), autocast(device, autocast_dtype):
        # On a GPU without worker processes, the next chunk is prepared in a thread while the model runs.
        chunks = loader if num_workers > 0 or device.type == "cpu" else prefetch_in_thread(loader)
        bar = tqdm(total=len(items), disable=not progress, desc=desc, unit=unit)
        for positions, batch, failed in chunks:
            bar.update(len(positions) + len(failed))
            run.add_chunk(positions, batch, failed)
        run.finish()
        bar.close()
    return run.result()
