"""meanwhile: durable background tasks for AI agents, from Python.

`Client` and `AsyncClient` speak to the meanwhile daemon (started on first use);
`meanwhile.tools` offers its background tools to any agent loop.
"""

from importlib.metadata import PackageNotFoundError, version

from .client import AsyncClient, Client, default_home, find_binary
from .errors import (
    Conflict,
    InvalidArgument,
    MeanwhileError,
    NotFound,
    Unauthorized,
    Unavailable,
)
from .types import (
    TERMINAL_STATES,
    Attempt,
    Budget,
    Event,
    InputSent,
    Notification,
    OutputChunk,
    Page,
    Queue,
    Schedule,
    Task,
    WaitResult,
)

try:
    #: The installed package's version, which is the meanwhile binary's.
    __version__ = version("meanwhile")
except PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0+unknown"

__all__ = [
    "AsyncClient",
    "Attempt",
    "Budget",
    "Client",
    "Conflict",
    "Event",
    "InputSent",
    "InvalidArgument",
    "MeanwhileError",
    "NotFound",
    "Notification",
    "OutputChunk",
    "Page",
    "Queue",
    "Schedule",
    "TERMINAL_STATES",
    "Task",
    "Unauthorized",
    "Unavailable",
    "WaitResult",
    "default_home",
    "find_binary",
]
