"""Garbage collection of the image store: blobs and unpacked layers that no
image references and no pod uses, and what interrupted writers left.

It runs under the store's GC lock held exclusively, so it waits for (or,
with ``wait=False``, gives up on) every writer in progress: a pull holds
that lock shared from its first staged byte until its image is tagged, so
nothing a pull has staged is ever collected, and whatever a killed pull
left is collected by the next GC.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

from minipod.errors import ImageError
from minipod.images.layers import disk_usage, remove_tree

# Diff IDs that GC must keep although no image names them, or a function
# that returns them (see ImageStore.gc).
KeepLayers = Iterable[str] | Callable[[], Iterable[str]] | None


class GcReport:
    """What one garbage collection removed: how many blobs, unpacked layers
    and temporaries of dead writers, and the bytes they held on disk
    (``freed``); ``layer_ids`` are the removed layers' diff IDs. ``skipped``
    when it could not run (a writer is busy, or an image could not be read)."""

    __slots__ = ("blobs", "layers", "temporaries", "skipped", "freed", "layer_ids")

    def __init__(self, blobs: int = 0, layers: int = 0, temporaries: int = 0, skipped: bool = False,
                 freed: int = 0, layer_ids: list[str] | None = None):
        self.blobs = blobs
        self.layers = layers
        self.temporaries = temporaries
        self.skipped = skipped
        self.freed = freed
        self.layer_ids = [] if layer_ids is None else layer_ids

    def _key(self) -> tuple:
        return (self.blobs, self.layers, self.temporaries, self.skipped, self.freed, tuple(self.layer_ids))

    def __eq__(self, other):
        return self._key() == other._key() if isinstance(other, GcReport) else NotImplemented

    def __hash__(self):
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"GcReport(blobs={self.blobs!r}, layers={self.layers!r}, temporaries={self.temporaries!r}, "
                f"skipped={self.skipped!r}, freed={self.freed!r})")


def collect(store, *, wait: bool = True, keep_layers: KeepLayers = None) -> GcReport:
    """Delete blobs and layers that no reference uses, and temporaries of
    writers that died. With ``wait=False`` it gives up at once when a
    writer is busy. ``keep_layers``: diff IDs of layers to keep although
    no image names them (pods made from an image removed with ``-f``
    still have them as their lower dirs), or a function returning them,
    called once the GC lock is held so that it sees every pod that
    could have picked a layer before."""
    if not os.path.isdir(store.images_dir):
        return GcReport()
    with store.collecting(wait=wait) as locked:
        if not locked:
            _log().debug("image GC skipped: a writer is busy")
            return GcReport(skipped=True)
        # Writers are excluded, so the index can only shrink meanwhile:
        # reading it without its lock keeps at worst a little too much.
        try:
            used_blobs, used_layers = store.referenced()
        except ImageError as exc:
            _log().warning("image GC skipped: %s", exc)
            return GcReport(skipped=True)
        used_layers.update(keep_layers() if callable(keep_layers) else (keep_layers or ()))
        blobs = [d for d in store.blobs.digests() if d not in used_blobs]
        layers = [d for d in store.layers.diff_ids() if d not in used_layers]
        freed = 0
        for digest in blobs:
            freed += disk_usage(store.blobs.path(digest))
            store.blobs.delete(digest)
        for diff_id in layers:
            freed += disk_usage(store.layers.path(diff_id))
            store.layers.remove(diff_id)
        temporaries = 0
        for count, size in (store.blobs.remove_temporaries(), store.layers.remove_temporaries()):
            temporaries += count
            freed += size
        if os.path.isdir(store.tmp_dir):
            for name in os.listdir(store.tmp_dir):
                freed += disk_usage(os.path.join(store.tmp_dir, name))
                remove_tree(os.path.join(store.tmp_dir, name))
                temporaries += 1
    if blobs or layers or temporaries:
        _log().debug("image GC: %d blobs, %d layers, %d temporaries, %d bytes", len(blobs), len(layers),
                     temporaries, freed)
    return GcReport(blobs=len(blobs), layers=len(layers), temporaries=temporaries, freed=freed,
                    layer_ids=layers)


def _log():
    import logging

    return logging.getLogger("minipod.images.gc")
