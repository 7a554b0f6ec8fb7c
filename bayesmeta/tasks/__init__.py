"""Task data: containers, built-in task families and tasks from user arrays."""

from bayesmeta.tasks.arrays import TaskPool, from_arrays
from bayesmeta.tasks.episodes import Episodes, split_classes
from bayesmeta.tasks.glyphs import glyph_episodes, make_glyphs
from bayesmeta.tasks.pacoh import PacohCauchy, PacohSinusoid
from bayesmeta.tasks.regression import Sinusoid, SinusoidOrLine
from bayesmeta.tasks.source import SeededSource, TaskSource
from bayesmeta.tasks.task import Task, TaskBatch

__all__ = [
    "Episodes",
    "PacohCauchy",
    "PacohSinusoid",
    "SeededSource",
    "Sinusoid",
    "SinusoidOrLine",
    "Task",
    "TaskBatch",
    "TaskPool",
    "TaskSource",
    "from_arrays",
    "glyph_episodes",
    "make_glyphs",
    "split_classes",
]
