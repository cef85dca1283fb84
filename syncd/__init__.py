"""syncd: mirror a folder tree of labelled images into an Azure Custom Vision training project."""

__version__ = "0.1.0"
