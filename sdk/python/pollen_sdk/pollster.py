"""The ``pollster-plugin`` world: a class with ``describe()`` and ``poll(resources)``,
exported with ``Pollster = export(YourClass)``.

``describe()`` returns the meters (``Meter.gauge(...)``), once, at load.
``poll(resources)`` returns samples (``Sample(meter, resource, volume)``), where
``meter`` indexes the described list and ``resource`` the list received; a meter
described without ``discovered_by`` is polled once per cycle with no resources,
and names what it measures: ``this_host()`` for a host-level meter, or
``name_resource(...)``.
"""

from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from componentize_py_types import Err

from wit_world import exports

from ._common import HostError, config, guarded, optional_import, types
from ._common import metadata as _entries

hypervisor = optional_import("hypervisor")
_resources = optional_import("resources")
_sub_meters = optional_import("sub_meters")

__all__ = [
    "Meter",
    "Resource",
    "Sample",
    "domain_stats",
    "each_domain",
    "export",
    "hypervisor",
    "name_resource",
    "name_sub_meter",
    "this_host",
]

Resource = types.ResourceInfo
"""A resource as ``poll`` receives it: ``id``, ``name`` and the discoverer's ``data``."""


class Meter:
    """Constructors for the meters ``describe`` returns."""

    @staticmethod
    def of(name: str, type: types.MeterType, unit: str, discovered_by: Optional[str] = None) -> types.Meter:
        """A meter of any type."""
        return types.Meter(name, type, unit, discovered_by)

    @staticmethod
    def gauge(name: str, unit: str, discovered_by: Optional[str] = None) -> types.Meter:
        """A point-in-time meter, e.g. ``Meter.gauge("memory.usage", "MiB", "local_instances")``."""
        return types.Meter(name, types.MeterType.GAUGE, unit, discovered_by)

    @staticmethod
    def cumulative(name: str, unit: str, discovered_by: Optional[str] = None) -> types.Meter:
        """A counter that only grows, e.g. ``Meter.cumulative("cpu", "ns", "local_instances")``."""
        return types.Meter(name, types.MeterType.CUMULATIVE, unit, discovered_by)

    @staticmethod
    def delta(name: str, unit: str, discovered_by: Optional[str] = None) -> types.Meter:
        """A change since the previous reading."""
        return types.Meter(name, types.MeterType.DELTA, unit, discovered_by)


def Sample(
    meter: int,
    resource: int,
    volume: float,
    resource_id: Optional[str] = None,
    metadata: Optional[Dict[str, Any]] = None,
) -> types.Sample:
    """A sample of the ``meter``-th described meter on the ``resource``-th resource;
    ``resource_id`` for a device of it (``<uuid>-vda``), ``metadata`` for keys added
    to the resource's."""
    return types.Sample(meter, resource, float(volume), resource_id, _entries(metadata))


def name_resource(
    id: str,
    name: Optional[str] = None,
    user_id: Optional[str] = None,
    project_id: Optional[str] = None,
    metadata: Optional[Dict[str, Any]] = None,
    data: Optional[str] = None,
) -> int:
    """Names a resource for this call's samples and returns the index they give as
    their ``resource``. Raises ``HostError`` if the agent refused it (over its bounds)."""
    resource = types.DiscoveredResource(id, name or id, user_id, project_id, _entries(metadata), data)
    index = _resources.add(resource)
    if index is None:
        raise HostError(f"the agent refused the resource `{id}` (over its bounds)")
    return index


def this_host(metadata: Optional[Dict[str, Any]] = None) -> int:
    """Names this host (the agent's ``host``, its host name unless ``params`` set
    one) as a resource of this call, for a host-level meter; returns its index."""
    host = config.get("host") or "localhost"
    return name_resource(host, host, metadata=metadata)


def name_sub_meter(meter: int, part: str) -> int:
    """The sub-meter ``part`` of described meter ``meter`` (``prefix.{category}``);
    returns the index its samples give as their ``meter``."""
    index = _sub_meters.add(meter, part)
    if index is None:
        raise HostError(f"the agent refused the sub-meter `{part}` of meter {meter}")
    return index


def domain_stats(resource: types.ResourceInfo) -> hypervisor.DomainStats:
    """The libvirt statistics of the domain behind a ``local_instances`` resource, from
    the cycle's snapshot (needs ``grants: [hypervisor]``)."""
    return hypervisor.get_stats(resource.id)


def each_domain(resources: List[types.ResourceInfo]) -> Iterator[Tuple[int, hypervisor.DomainStats]]:
    """``(index, stats)`` for each resource whose domain the hypervisor knows this
    cycle; a domain gone since discovery is left out."""
    for index, resource in enumerate(resources):
        try:
            stats = hypervisor.get_stats(resource.id)
        except Err:
            continue
        yield index, stats


def export(implementation: Callable[[], Any]) -> type:
    """The class componentize-py exports as ``pollen:plugin/pollster``: one instance of
    ``implementation``, whose exceptions become the call's error."""
    instance: List[Any] = []

    def this() -> Any:
        if not instance:
            instance.append(implementation())
        return instance[0]

    class Pollster(exports.Pollster):
        def describe(self) -> List[types.Meter]:
            # `describe` cannot fail in the contract: an exception here traps, and
            # the agent refuses the plugin with the exception's last lines.
            return list(this().describe())

        def poll(self, resources: List[types.ResourceInfo]) -> List[types.Sample]:
            return guarded(lambda: list(this().poll(resources)))

    return Pollster
