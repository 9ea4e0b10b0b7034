"""Prints, as JSON, one instance of each REST schema the edge core reads, with every field the
Cyberwave SDK (pydantic) requires, filled with a value of its type. Run by the Python of a venv
holding the SDK (the original's): bench/idle.py merges its own values over these, so the
original, which validates every answer, accepts the fake backend's answers."""
import datetime, json, sys, types, typing

import pydantic
import cyberwave.rest.models as models

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc).isoformat()


def value(t, depth=0):
    origin = typing.get_origin(t)
    args = typing.get_args(t)
    if origin is typing.Annotated:
        return value(args[0], depth)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args:
            return None
        return value(args[0], depth)
    if origin in (list, typing.List, set, tuple):
        return []
    if origin in (dict, typing.Dict):
        return {}
    if origin is typing.Literal:
        return args[0]
    if isinstance(t, type) and issubclass(t, pydantic.BaseModel):
        return instance(t, depth + 1) if depth < 4 else {}
    if t is bool:
        return False
    if t in (int,):
        return 0
    if t is float:
        return 0.0
    if t in (datetime.datetime,):
        return NOW
    if t is datetime.date:
        return "2026-01-01"
    if t is dict or t is typing.Any or t is object:
        return {}
    if t is list:
        return []
    return "x"


def instance(model, depth=0):
    out = {}
    for name, f in model.model_fields.items():
        if f.is_required():
            out[f.alias or name] = value(f.annotation, depth)
    return out


if __name__ == "__main__":
    names = sys.argv[1:] or [n for n in dir(models) if n.endswith("Schema")]
    print(json.dumps({n: instance(getattr(models, n)) for n in names if hasattr(models, n)}))
