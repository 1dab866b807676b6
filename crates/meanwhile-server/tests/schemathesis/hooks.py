"""Hooks for the schemathesis run against a test daemon.

The daemon runs what it is given, so every command and argv that would run is
replaced by a harmless one (a valid value by another valid value, so the case
stays what it was), and waits that could block for long are bounded to a second.
"""

import re

import schemathesis

WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def runnable_command(value):
    return isinstance(value, str) and "\0" not in value and value.strip(WHITESPACE) != ""


def runnable_argv(value):
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(a, str) and "\0" not in a for a in value)
        and value[0] != ""
    )


def tame_spec(spec):
    if not isinstance(spec, dict):
        return
    if runnable_command(spec.get("command")):
        spec["command"] = "true"
    if runnable_argv(spec.get("argv")):
        spec["argv"] = ["true"]
    if runnable_command(spec.get("on_end")):
        spec["on_end"] = "true"


def bound_wait(body):
    if isinstance(body, dict) and (body.get("timeout") is None or is_duration(body.get("timeout"))):
        body["timeout"] = "1s"


DURATION = re.compile(
    r"^([0-9]{1,12}(\.[0-9]{1,3})?|([0-9]{1,9}d)?([0-9]{1,10}h)?([0-9]{1,11}m)?([0-9]{1,12}(\.[0-9]{1,3})?s)?([0-9]{1,15}ms)?)$"
)


def is_duration(value):
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return 0 <= value <= (2**63 - 1) // 4 / 1000
    return isinstance(value, str) and value != "" and DURATION.fullmatch(value) is not None


def is_positive_duration(value):
    if not is_duration(value):
        return False
    if isinstance(value, str):
        return re.search("[1-9]", value) is not None
    # The most a spec keeps (about 1.5 billion days).
    return 0.0005 <= value <= 130399999909939.984375


CRON_FIELDS = re.compile(
    "^[" + WHITESPACE + "]*[^" + WHITESPACE + "]+([" + WHITESPACE + "]+[^" + WHITESPACE + "]+){4,5}[" + WHITESPACE + "]*$"
)
SCHEDULE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
schedules_added = 0


def tame_schedule(body):
    """A schedule that fires rarely and runs `true`, under a name not used before
    (a second add of a name is a conflict, which is not what the case tests)."""
    global schedules_added
    if not isinstance(body, dict):
        return
    tame_spec(body.get("task"))
    cron = body.get("cron")
    if isinstance(cron, str) and CRON_FIELDS.fullmatch(cron):
        fields = len(cron.split())
        body["cron"] = "0 0 1 1 *" if fields == 5 else "0 0 0 1 1 *"
    if is_positive_duration(body.get("every")):
        body["every"] = "1d"
    name = body.get("name")
    if isinstance(name, str) and SCHEDULE_NAME.fullmatch(name):
        schedules_added += 1
        suffix = f"-{schedules_added}"
        body["name"] = name[: 64 - len(suffix)] + suffix


@schemathesis.hook
def before_call(context, case, kwargs):
    path = case.operation.path
    if path == "/v1/tasks" and case.method.upper() == "POST":
        tame_spec(case.body)
    elif path == "/v1/tasks/batch" and isinstance(case.body, dict):
        tasks = case.body.get("tasks")
        if isinstance(tasks, list):
            for spec in tasks:
                tame_spec(spec)
    elif path == "/v1/schedules" and case.method.upper() == "POST":
        tame_schedule(case.body)
    elif path == "/v1/wait":
        bound_wait(case.body)
    elif path == "/v1/tasks/{id}/output" and isinstance(case.query, dict):
        timeout = case.query.get("timeout")
        if timeout is None or is_duration(timeout):
            case.query["timeout"] = "1s"
