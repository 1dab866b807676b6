"""The typed records against the daemon's own OpenAPI document: each names every
property of its schema and nothing else, so a field the API gains or loses fails
here rather than landing unnamed in `.extra`."""

from __future__ import annotations

import dataclasses

from meanwhile import (
    Attempt,
    Budget,
    Client,
    Event,
    InputSent,
    Notification,
    OutputChunk,
    Queue,
    Schedule,
    Task,
    WaitResult,
)

#: Each record, the schema it is read from, and the fields it has beyond it.
RECORDS: list[tuple[type, str, set[str]]] = [
    (Attempt, "Attempt", set()),
    # `run` answers the task with the warning of its submit (`SubmitAnswer`).
    (Task, "TaskRecord", {"warning"}),
    (OutputChunk, "OutputChunk", set()),
    (Notification, "Notification", set()),
    (Event, "Event", set()),
    (WaitResult, "WaitOutcome", set()),
    (InputSent, "InputSent", set()),
    (Queue, "QueueInfo", set()),
    (Budget, "BudgetInfo", set()),
    (Schedule, "ScheduleInfo", set()),
]


def test_records_name_every_property_of_their_schema(home) -> None:
    doc = Client().openapi()
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    for record, schema, beyond in RECORDS:
        fields = {f.name for f in dataclasses.fields(record)} - {"extra"}
        properties = set(schemas[schema]["properties"])
        assert fields - beyond == properties, (
            f"{record.__name__} and the schema {schema}: "
            f"only in the record {sorted(fields - beyond - properties)}, "
            f"only in the schema {sorted(properties - fields)}"
        )
    # The answers carry what the schemas name: a submit's answer is read whole.
    assert set(schemas["SubmitAnswer"]["properties"]) == {"id", "warning"}
