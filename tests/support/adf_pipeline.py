"""Runs the control flow of an ADF pipeline file against the real HTTP functions, as Data Factory would.

Only what the shipped reconciliation loop uses, and strictly: an activity
type, expression function or syntax this engine does not know raises, so the
pipeline file cannot grow something the tests do not check. The semantics
modelled (Data Factory's, as documented):

- an Azure Function activity succeeds on a 2xx answer whose body is a JSON
  object (its `output`) and fails on any other status, after `policy.retry`
  more attempts;
- an activity runs once every activity it depends on has ended with one of
  the listed `dependencyConditions` (Succeeded, Failed, Skipped, Completed);
  otherwise it is skipped;
- Until is do-until: it runs its activities, then ends when its expression
  is true; it fails as soon as an inner activity fails;
- a pipeline fails when one of its activities fails.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable


HttpCall = Callable[[str, str, dict[str, Any]], tuple[int, dict[str, Any]]]
SUCCEEDED, FAILED, SKIPPED = "Succeeded", "Failed", "Skipped"
MAX_ITERATIONS = 500  # a loop that never ends fails the test instead of hanging it

_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_]\w*)|(?P<punct>[(),.\[\]]))")


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"cannot parse expression at {text[pos:]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


@dataclass
class Context:
    variables: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "equals": lambda a, b: a == b,
    "concat": lambda *parts: "".join(str(p) for p in parts),
    "coalesce": lambda *values: next((v for v in values if v is not None), None),
    "json": lambda text: json.loads(text),
    "not": lambda value: not value,
}


def evaluate(expression: str, context: Context) -> Any:
    """An ADF expression (`@...`); a string without `@` is a literal."""
    if not expression.startswith("@"):
        return expression
    tokens = _tokens(expression[1:])
    value, rest = _expr(tokens, context)
    if rest:
        raise ValueError(f"trailing tokens in {expression!r}: {rest}")
    return value


def _expr(tokens: list[tuple[str, str]], context: Context) -> tuple[Any, list[tuple[str, str]]]:
    (kind, text), rest = tokens[0], tokens[1:]
    if kind == "string":
        value: Any = text[1:-1].replace("''", "'")
    elif kind == "number":
        value = float(text) if "." in text else int(text)
    elif kind == "name" and text in ("true", "false", "null") and (not rest or rest[0][1] != "("):
        value = {"true": True, "false": False, "null": None}[text]
    elif kind == "name" and rest and rest[0][1] == "(":
        args, rest = _args(rest[1:], context)
        if text == "variables":
            value = context.variables[args[0]]
        elif text == "activity":
            value = {"output": context.outputs[args[0]]}  # KeyError: the activity has not run
        elif text in FUNCTIONS:
            value = FUNCTIONS[text](*args)
        else:
            raise ValueError(f"expression function {text!r} is not modelled")
    else:
        raise ValueError(f"unexpected token {text!r}")
    while rest and rest[0][1] == ".":
        name = rest[1][1]
        value, rest = value[name], rest[2:]  # a missing property is an error in ADF too
    return value, rest


def _args(tokens: list[tuple[str, str]], context: Context) -> tuple[list[Any], list[tuple[str, str]]]:
    args: list[Any] = []
    if tokens[0][1] == ")":
        return args, tokens[1:]
    while True:
        value, tokens = _expr(tokens, context)
        args.append(value)
        separator, tokens = tokens[0][1], tokens[1:]
        if separator == ")":
            return args, tokens
        if separator != ",":
            raise ValueError(f"expected , or ) but got {separator!r}")


def _value(spec: Any, context: Context) -> Any:
    if isinstance(spec, dict) and spec.get("type") == "Expression":
        return evaluate(spec["value"], context)
    return evaluate(spec, context) if isinstance(spec, str) else spec


@dataclass
class Run:
    status: str = SUCCEEDED
    calls: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # every HTTP answer, in order
    iterations: int = 0
    error: str | None = None


def _may_run(activity: dict[str, Any], ended: dict[str, str]) -> bool:
    for dependency in activity.get("dependsOn", []):
        status = ended[dependency["activity"]]
        conditions = set(dependency["dependencyConditions"])
        if status not in conditions and not ("Completed" in conditions and status in (SUCCEEDED, FAILED)):
            return False
    return True


def _run_activities(activities: list[dict[str, Any]], context: Context, call: HttpCall, run: Run) -> str:
    """One pass over a list of activities in dependency order; the list's outcome."""
    ended: dict[str, str] = {}
    pending = list(activities)
    while pending:
        ready = [a for a in pending if all(d["activity"] in ended for d in a.get("dependsOn", []))]
        if not ready:
            raise ValueError("dependency cycle or reference to an unknown activity")
        for activity in ready:
            pending.remove(activity)
            ended[activity["name"]] = (_run_one(activity, context, call, run) if _may_run(activity, ended)
                                       else SKIPPED)
    return FAILED if FAILED in ended.values() else SUCCEEDED


def _run_one(activity: dict[str, Any], context: Context, call: HttpCall, run: Run) -> str:
    kind, props = activity["type"], activity["typeProperties"]
    if kind == "AzureFunctionActivity":
        body = _value(props.get("body"), context)
        for _ in range(1 + int(activity.get("policy", {}).get("retry", 0))):
            status, answer = call(props["functionName"], props["method"], body)
            run.calls.append((status, answer))
            if 200 <= status < 300 and isinstance(answer, dict):
                context.outputs[activity["name"]] = answer
                return SUCCEEDED
        run.error = f"{activity['name']}: HTTP {status}"
        return FAILED
    if kind == "SetVariable":
        value = _value(props["value"], context)
        if props["variableName"] not in context.variables:
            raise ValueError(f"variable {props['variableName']!r} is not declared")
        context.variables[props["variableName"]] = value
        return SUCCEEDED
    if kind == "Until":
        while True:
            run.iterations += 1
            if run.iterations > MAX_ITERATIONS:
                run.error = "the Until loop did not end"
                return FAILED
            if _run_activities(props["activities"], context, call, run) == FAILED:
                return FAILED
            if _value(props["expression"], context) is True:
                return SUCCEEDED
    raise ValueError(f"activity type {kind!r} is not modelled")


def run_pipeline(pipeline: dict[str, Any], call: HttpCall) -> Run:
    """Run a pipeline resource (as in adf/pipeline/*.json) to its end."""
    properties = pipeline["properties"]
    context = Context({name: spec.get("defaultValue") for name, spec in properties.get("variables", {}).items()})
    run = Run()
    run.status = _run_activities(properties["activities"], context, call, run)
    return run
