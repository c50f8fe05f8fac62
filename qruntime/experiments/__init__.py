"""qruntime's experiment store with caqtus' session shape: paths, sequences, global parameters and
device configurations, changed inside `with maker() as session:` blocks that commit atomically.

A light client: it imports only the standard library."""

from .errors import (
    ConflictError,
    ExperimentError,
    InvalidInputError,
    InvalidTransitionError,
    NotFoundError,
    PathBusyError,
    PathExistsError,
    PathHasSequencesError,
    PathIsSequenceError,
    PathNotFoundError,
    PreconditionFailedError,
    SequenceNotEditableError,
    SequenceNotFoundError,
    ServerError,
)
from .session import (
    DeviceConfiguration,
    DeviceConfigurations,
    ExperimentSession,
    ExperimentSessionMaker,
    PathHierarchy,
    Sequence,
    SequenceCollection,
    SequenceState,
)

__all__ = [
    "ConflictError",
    "DeviceConfiguration",
    "DeviceConfigurations",
    "ExperimentError",
    "ExperimentSession",
    "ExperimentSessionMaker",
    "InvalidInputError",
    "InvalidTransitionError",
    "NotFoundError",
    "PathBusyError",
    "PathExistsError",
    "PathHasSequencesError",
    "PathHierarchy",
    "PathIsSequenceError",
    "PathNotFoundError",
    "PreconditionFailedError",
    "Sequence",
    "SequenceCollection",
    "SequenceNotEditableError",
    "SequenceNotFoundError",
    "SequenceState",
    "ServerError",
]
