"""The run report (``promptmill report``) and the results browser (``promptmill view``)."""

from promptmill.report.accuracy import Accuracy, read_accuracy, read_extractions
from promptmill.report.timeline import RunReport, read_run

__all__ = ["Accuracy", "RunReport", "read_accuracy", "read_extractions", "read_run"]
