"""What every world has: the shared types, ``log``, ``config``, and errors."""

import json
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from componentize_py_types import Err
from wit_world.imports import config as _config
from wit_world.imports import log as _log

try:  # a world of the `pollen:plugin` package itself
    from wit_world.imports import pollen_plugin_types as types
except ImportError:  # a world of the plugin's own package (`pollen plugin new`)
    from wit_world.imports import types  # type: ignore[no-redef]


class PluginError(Exception):
    """A plugin call failed; the agent logs the message with the plugin's name."""

    def to_wit(self) -> types.Error:
        return types.Error_Other(str(self))


class BadConfig(PluginError):
    """The plugin's parameters (``params`` in the pipeline file) are wrong; the text
    says how. ``pollen validate`` reports it for the plugin's sink or source."""

    def to_wit(self) -> types.Error:
        return types.Error_BadConfig(str(self))


class HostError(PluginError):
    """A host function the plugin needs was not granted or failed."""

    def to_wit(self) -> types.Error:
        return types.Error_Host(str(self))


def _where(error: BaseException) -> str:
    """`file.py:12 in poll`: the innermost frame of the plugin's own code."""
    frames = traceback.extract_tb(error.__traceback__)
    own = [f for f in frames if "pollen_sdk" not in f.filename] or frames
    if not own:
        return ""
    frame = own[-1]
    return f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name})"


def optional_import(name: str) -> Any:
    """The bindings of interface `name` if the plugin's world imports it, else a
    stand-in whose use says to add the import (a plugin imports only what it needs,
    and the agent grants only what it imports)."""
    import importlib

    try:
        return importlib.import_module(f"wit_world.imports.{name}")
    except ImportError:
        return _Missing(name)


class _Missing:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        interface = self._name.replace("_", "-")
        raise PluginError(
            f"this plugin's world does not import `pollen:plugin/{interface}`: add "
            f"`import pollen:plugin/{interface}@0.2.0;` to its world in wit/world.wit"
        )


def as_wit_error(error: BaseException) -> types.Error:
    """The WIT error a Python exception becomes: its own for the SDK's errors and for
    a host function's failure, otherwise `Other` with its type, message and where."""
    if isinstance(error, PluginError):
        return error.to_wit()
    if isinstance(error, Err) and isinstance(
        error.value, (types.Error_BadConfig, types.Error_Host, types.Error_Other)
    ):
        return error.value
    return types.Error_Other(f"{type(error).__name__}: {error}{_where(error)}")


R = TypeVar("R")


def guarded(call: Callable[[], R]) -> R:
    """Runs `call`; an exception leaves as the WIT error the agent reports."""
    try:
        return call()
    except Exception as error:  # every failure becomes the call's error, never a trap
        raise Err(as_wit_error(error))


def value(v: Any) -> types.Value:
    """A metadata value: None, str, bool, int and float as themselves; dicts and
    lists as JSON text (Nova's ``flavor``)."""
    if v is None:
        return types.Value_Null()
    if isinstance(v, bool):
        return types.Value_Boolean(v)
    if isinstance(v, int):
        return types.Value_Integer(v)
    if isinstance(v, float):
        return types.Value_Float(v)
    if isinstance(v, str):
        return types.Value_Text(v)
    return types.Value_Json(json.dumps(v))


def entry(key: str, v: Any) -> types.MetadataEntry:
    """One metadata entry, e.g. ``entry("disk_name", "vda")``."""
    return types.MetadataEntry(key, value(v))


def metadata(items: Optional[Dict[str, Any]]) -> List[types.MetadataEntry]:
    """Metadata entries from a dict."""
    return [entry(key, v) for key, v in (items or {}).items()]


class _Log:
    """The agent's log, with the plugin's name (rate-limited by the agent)."""

    def trace(self, message: str) -> None:
        _log.log(_log.Level.TRACE, message)

    def debug(self, message: str) -> None:
        _log.log(_log.Level.DEBUG, message)

    def info(self, message: str) -> None:
        _log.log(_log.Level.INFO, message)

    def warn(self, message: str) -> None:
        _log.log(_log.Level.WARN, message)

    def error(self, message: str) -> None:
        _log.log(_log.Level.ERROR, message)


log = _Log()


class _Config:
    """The plugin's ``params`` from the pipeline file (and ``host``: this host's name)."""

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        found = _config.get(key)
        return default if found is None else found

    def all(self) -> List[Tuple[str, str]]:
        return _config.get_all()


config = _Config()
