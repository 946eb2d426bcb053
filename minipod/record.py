"""Small value records, declared like dataclasses, built without them.

``dataclasses`` costs ~40 ms to import here (it pulls in ``inspect``) and
about a millisecond per class for the code it generates; minipod's records
are created on every ``minipod run``, so they use this base instead::

    class User(Record):
        uid: int = 0
        gid: int = 0

The fields are the class's annotated names, in order (a parent's first);
the class attribute, when there is one, is the default. Records compare by
value, print as ``User(uid=0, gid=0)``, and are immutable unless the class
says ``_frozen = False``. Defaults are shared between instances: use
immutable ones (a tuple, ``None``).
"""

from __future__ import annotations


class Record:
    _fields: tuple[str, ...] = ()
    _frozen = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # The parent's fields first (``cls._fields`` is still the parent's here).
        own = [name for name in cls.__dict__.get("__annotations__", ()) if name not in cls._fields]
        cls._fields = cls._fields + tuple(own)
        if not cls._frozen:
            cls.__hash__ = None  # mutable values must not be dict keys

    def __init__(self, *args, **kwargs):
        cls = type(self)
        if len(args) > len(cls._fields):
            raise TypeError(f"{cls.__name__}() takes {len(cls._fields)} arguments, got {len(args)}")
        values = dict(zip(cls._fields, args))
        for name, value in kwargs.items():
            if name not in cls._fields or name in values:
                raise TypeError(f"{cls.__name__}() got an unexpected or repeated argument {name!r}")
            values[name] = value
        for name in cls._fields:
            if name not in values:
                if not hasattr(cls, name):
                    raise TypeError(f"{cls.__name__}() missing argument {name!r}")
                values[name] = getattr(cls, name)
        self.__dict__.update(values)

    def __setattr__(self, name, value):
        if self._frozen:
            raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__}: cannot delete {name!r}")

    def _values(self) -> tuple:
        return tuple(self.__dict__[name] for name in self._fields)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self):
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={self.__dict__[name]!r}" for name in self._fields)
        return f"{type(self).__name__}({args})"
