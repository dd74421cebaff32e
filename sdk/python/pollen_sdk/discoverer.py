"""The ``discoverer-plugin`` world: a class with ``name()`` and ``discover(param)``,
exported with ``Discoverer = export(YourClass)``.

``discover`` reports each resource present now with ``report(...)`` (in full when new
or changed since this instance's previous call, ``report_unchanged(id)`` otherwise);
a resource not reported is gone.
"""

from typing import Any, Callable, Dict, List, Optional

from wit_world import exports
from wit_world.imports import discovered as _discovered

from ._common import guarded, optional_import, types
from ._common import metadata as _entries

hypervisor = optional_import("hypervisor")

__all__ = ["export", "hypervisor", "report", "report_unchanged"]


def report(
    id: str,
    name: Optional[str] = None,
    user_id: Optional[str] = None,
    project_id: Optional[str] = None,
    metadata: Optional[Dict[str, Any]] = None,
    data: Optional[str] = None,
) -> None:
    """Reports one resource in full: its id, a name its pollsters may need, owner,
    ``resource_metadata`` and ``data`` (JSON text for its pollsters, never published)."""
    resource = types.DiscoveredResource(id, name or id, user_id, project_id, _entries(metadata), data)
    _discovered.report(types.Discovery_Changed(resource))


def report_unchanged(id: str) -> None:
    """Reports a resource this instance reported in its previous call, unchanged."""
    _discovered.report(types.Discovery_Unchanged(id))


def export(implementation: Callable[[], Any]) -> type:
    """The class componentize-py exports as ``pollen:plugin/discoverer``."""
    instance: List[Any] = []

    def this() -> Any:
        if not instance:
            instance.append(implementation())
        return instance[0]

    class Discoverer(exports.Discoverer):
        def name(self) -> str:
            return str(this().name())

        def discover(self, param: Optional[str]) -> None:
            guarded(lambda: this().discover(param))

    return Discoverer
