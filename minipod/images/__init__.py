"""The local image store: content-addressed blobs, layers unpacked once and
used as overlay lower dirs, and references as Docker names them.

    from minipod.images import ImageStore, Image, normalize_reference
    store = ImageStore(config.images_dir)
    image = store.resolve("busybox")      # image.layer_dirs, image.config...

``minipod.images.importer.import_rootfs`` makes an image from a directory or
a tar file; pull and load build on ``ImageStore.add_image``.
"""

from minipod.images.reference import normalize_reference, parse_reference
from minipod.images.store import GcReport, Image, ImageStore

__all__ = ["GcReport", "Image", "ImageStore", "normalize_reference", "parse_reference"]
