"""The local image store: content-addressed blobs, layers unpacked once and
used as overlay lower dirs, and references as Docker names them.

    from minipod.images import ImageStore, Image, normalize_reference
    store = ImageStore(config.images_dir)
    image = store.resolve("busybox")      # image.layer_dirs, image.config...

``minipod.images.importer.import_rootfs`` makes an image from a directory or
a tar file; pull and load build on ``ImageStore.add_image``.

The names are loaded when first asked for, so that a process that only
needs one part (the unpacker of bench/images.py) does not pay for the rest.
"""

__all__ = ["GcReport", "Image", "ImageStore", "normalize_reference", "parse_reference"]

_WHERE = {"GcReport": "minipod.images.gc", "Image": "minipod.images.store", "ImageStore": "minipod.images.store",
          "normalize_reference": "minipod.images.reference", "parse_reference": "minipod.images.reference"}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'minipod.images' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
