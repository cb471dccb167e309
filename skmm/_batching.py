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
    """How a row that could not be prepared or decoded is reported (the same words on every path)."""
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
    """Move a tensor, or a dict / list of tensors, to ``device`` without blocking."""
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
    """
    # Worker processes prepare small chunks, joined into model batches on the device: a worker that
    # had to decode a whole 256-image batch before anything flowed made start-up dominate on a GPU.
    chunk_size = batch_size if num_workers == 0 else max(1, min(batch_size, 32))
    # Without worker processes, each batch is prepared by as many threads as torch computes with. On
    # the CPU that happens between forwards, never beside one: a decode thread running next to torch's
    # threads stalls every parallel op it preempts (docs/performance.md has the measured cost). On a GPU
    # the model does not need the cores, so the next batch is also prepared ahead, in a background
    # thread, while one runs.
    threads = torch.get_num_threads() if num_workers == 0 else 1
    loader = DataLoader(
        _PreparedItems(items, prepare, threads=threads),
        batch_size=chunk_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_CollateGood(collate),
        pin_memory=device.type == "cuda",
        # Workers decode ahead of the model: two batches each keeps it fed.
        prefetch_factor=2 if num_workers > 0 else None,
    )
    embeddings = None
    failures = {}
    pending = []  # (positions, device tensor): copied back in groups, not per batch

    def flush():
        nonlocal embeddings
        for positions, output in pending:
            if isinstance(output, (list, tuple)) or output.ndim != 2:  # per-item arrays of any shape
                if embeddings is None:
                    embeddings = [None] * len(items)
                for position, value in zip(positions, output):
                    embeddings[position] = value.float().cpu().numpy()
                continue
            output = output.float().cpu().numpy()
            if embeddings is None:
                embeddings = np.full((len(items), output.shape[1]), np.nan, dtype=np.float32)
            embeddings[positions] = output
        pending.clear()

    chunks, chunk_positions = [], []

    def run_model():
        batch = chunks[0] if len(chunks) == 1 else _join(chunks)
        positions = sum(chunk_positions, [])
        output = forward(batch)
        if isinstance(output, tuple) and len(output) == 2 and isinstance(output[1], dict):
            output, failed_rows = output
            failures.update({positions[row]: message for row, message in failed_rows.items()})
        pending.append((positions, output))
        chunks.clear()
        chunk_positions.clear()
        if device.type == "cpu" or len(pending) >= 16:
            flush()

    with torch.inference_mode(), autocast(device, autocast_dtype):
        batches = loader if num_workers > 0 or device.type == "cpu" else prefetch_in_thread(loader)
        bar = tqdm(total=len(items), disable=not progress, desc=desc, unit=unit)
        for positions, batch, failed in batches:
            bar.update(len(positions) + len(failed))
            failures.update(failed)
            if batch is None:
                continue
            batch = to_device(batch, device)
            chunks.append(batch)
            chunk_positions.append(positions)
            # Token dicts are padded per chunk, so one chunk is one batch; tensors are joined.
            if not _joinable(batch) or sum(map(len, chunk_positions)) >= batch_size:
                run_model()
        if chunks:
            run_model()
        bar.close()
    flush()
    if embeddings is None:  # every item failed: the width is unknown here
        embeddings = np.full((len(items), 0), np.nan, dtype=np.float32)
    return embeddings, failures
