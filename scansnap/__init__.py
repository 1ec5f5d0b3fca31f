"""scansnap: the helper package of the executable book on *Scan and Snap* (Tian, Wang, Chen, Du,
NeurIPS 2023). Models, data, training dynamics, the paper's closed forms, metrics, figures,
widgets and coursework checks.

Core modules (what several chapters use): :mod:`~scansnap.data`, :mod:`~scansnap.models`,
:mod:`~scansnap.dynamics` (+ :mod:`~scansnap.grouped`), :mod:`~scansnap.theory`,
:mod:`~scansnap.metrics`, :mod:`~scansnap.decompose`, :mod:`~scansnap.mechanism`,
:mod:`~scansnap.wikitext`, :mod:`~scansnap.lm`. Each page of the book has its module in
:mod:`scansnap.chapters` (named like the page); :mod:`~scansnap.plots`,
:mod:`~scansnap.widgets` and :mod:`~scansnap.gluing` serve the pages; :mod:`~scansnap.figures`
maps the paper's figure numbers to chapter functions; :mod:`~scansnap.checks` and
:mod:`~scansnap.coursework` serve exercises and grading."""

from . import metrics, theory
from .data import SequenceClasses
from .dynamics import Run, population, train

__all__ = ["SequenceClasses", "Run", "train", "population", "theory", "metrics"]
__version__ = "0.1.0"
