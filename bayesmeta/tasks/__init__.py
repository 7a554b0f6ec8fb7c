"""Task data: containers, built-in task families and tasks from user arrays."""

from bayesmeta.tasks.arrays import TaskPool, from_arrays
from bayesmeta.tasks.augment import augment_classes
from bayesmeta.tasks.cross_domain import cross_domain_episodes, match_style
from bayesmeta.tasks.episodes import Episodes
from bayesmeta.tasks.glyphs import glyph_episodes, make_glyphs
from bayesmeta.tasks.images import digits_episodes, load_digits, load_image_folder
from bayesmeta.tasks.jitter import Jitter, JitteredEpisodes, jitter_images
from bayesmeta.tasks.labelled import split_classes
from bayesmeta.tasks.pacoh import PacohCauchy, PacohSinusoid
from bayesmeta.tasks.regression import Sinusoid, SinusoidOrLine
from bayesmeta.tasks.source import SeededSource, TaskSource
from bayesmeta.tasks.tables import GroupedTasks, from_dataframe, read_csv
from bayesmeta.tasks.task import Task, TaskBatch

__all__ = [
    "Episodes",
    "GroupedTasks",
    "Jitter",
    "JitteredEpisodes",
    "PacohCauchy",
    "PacohSinusoid",
    "SeededSource",
    "Sinusoid",
    "SinusoidOrLine",
    "Task",
    "TaskBatch",
    "TaskPool",
    "TaskSource",
    "augment_classes",
    "cross_domain_episodes",
    "digits_episodes",
    "from_arrays",
    "from_dataframe",
    "glyph_episodes",
    "jitter_images",
    "load_digits",
    "load_image_folder",
    "make_glyphs",
    "match_style",
    "read_csv",
    "split_classes",
]
