"""``ocrdet serve``: a local web app to inspect a data set, evaluations, the model's detections and a run."""
