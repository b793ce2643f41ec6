"""marketplane: the back end of a marketplace business."""

__version__ = "0.1.0"
