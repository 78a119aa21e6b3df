"""Duck-typed checks for the host platform's services: which shape an object has, or which method it lacks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ServiceShapeError(TypeError):
    """A service given to the agent matches none of the shapes it accepts; the message names what is missing."""


def has_methods(service: object, methods: Sequence[str]) -> bool:
    """Whether `service` has a callable attribute for every name in `methods`."""
    return all(callable(getattr(service, name, None)) for name in methods)


def pick_shape(role: str, service: object, shapes: Mapping[str, Sequence[str]]) -> str:
    """The name of the first shape whose methods `service` has, else ServiceShapeError naming the missing methods.

    The error names, for the shape `service` comes closest to, each method it lacks.
    """
    for name, methods in shapes.items():
        if has_methods(service, methods):
            return name
    closest, methods = max(shapes.items(), key=lambda item: sum(callable(getattr(service, m, None)) for m in item[1]))
    missing = [m for m in methods if not callable(getattr(service, m, None))]
    accepted = "; ".join(f"{shape}: {', '.join(ms)}" for shape, ms in shapes.items())
    raise ServiceShapeError(
        f"{role} ({type(service).__name__}) has no method {', '.join(repr(m) for m in missing)} "
        f"(closest shape: {closest}); accepted shapes are {accepted}"
    )


def field_of(result: Any, name: str) -> Any:
    """`result[name]` for a mapping, else `result.name` (platform results are dicts or models); None if absent."""
    if isinstance(result, Mapping):
        return result.get(name)
    return getattr(result, name, None)
