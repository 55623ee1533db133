"""How a training job's run ends when it does not produce a model: the
outcomes that the job runner (training.py) and the cluster runner
(training_kube.py) both raise and training.Job handles."""


class Interrupted(Exception):
    """The spooler is stopping: the job ends without an outcome and runs
    again when a spooler starts."""


class Failure(Exception):
    """The training failed; str() is the reason recorded for it."""
