"""A tiny name → builder registry, shared by every choice a user can make.

Why: adding a model (or dataset, method, schedule) should be adding one entry, and an unknown
name should produce the same clear error everywhere: it names the kind and lists the choices.
The CLI's choices, its ``--help`` and the config's validation all read the registry, so a name
registered at run time is accepted everywhere at once.

Why names can be *declared* before they are registered: most builders live in modules that import
TensorFlow (half a minute on a busy 2-core machine), while ``--help`` and config validation must
not. :mod:`tfrewind.choices` declares the built-in names in a light module; the module that
implements a name registers its builder under it (a test checks that the two agree).
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to builders; ``register`` is a decorator, ``get`` raises a helpful error.

    ``ordered``: list names in declaration/registration order (e.g. the paper's order of the
    schedules) instead of alphabetically.
    """

    def __init__(self, kind: str, *, ordered: bool = False, declare: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.ordered = ordered
        self._declared: dict[str, None] = dict.fromkeys(declare)
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def unregister(self, name: str) -> None:
        """Forget ``name`` (its builder and its declaration): for plugins and tests that clean up."""
        self._entries.pop(name, None)
        self._declared.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            if name in self._declared:
                raise LookupError(f"{self.kind} {name!r} is declared but its module was not imported") from None
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Every name a user may choose: the declared ones and those registered since."""
        names = list(dict.fromkeys([*self._declared, *self._entries]))
        return names if self.ordered else sorted(names)

    def declared(self) -> set[str]:
        return set(self._declared)

    def implemented(self) -> set[str]:
        return set(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._declared or name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
