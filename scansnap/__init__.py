"""scansnap: the helper package of the executable book on *Scan and Snap* (Tian, Wang, Chen, Du,
NeurIPS 2023). Models, data, training dynamics, the paper's closed forms, metrics, figures,
widgets and coursework checks."""

from . import metrics, theory
from .data import SequenceClasses
from .dynamics import Run, population, train

__all__ = ["SequenceClasses", "Run", "train", "population", "theory", "metrics"]
__version__ = "0.1.0"
