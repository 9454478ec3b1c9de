"""The error of bad annotation and prediction files, in a module of its own so that readers can raise it without
importing the annotation models (pydantic, OpenCV)."""


class AnnotationError(ValueError):
    """A problem in an annotation file, named by file, image and word id."""
