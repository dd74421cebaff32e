"""The ``transformer-plugin`` world: a class with ``configure()``,
``transform(batch)`` and ``flush(shutdown)``, exported with
``Transformer = export(YourClass)``.

Samples travel as ``SampleRef`` (meter handle, resource handle, volume, timestamp in
ns): read what they stand for with ``meter_of``, ``resource_id_of`` and
``metadata_of``; make a new meter with ``intern_meter``.
"""

from typing import Any, Callable, List, Optional

from wit_world import exports
from wit_world.imports import samples as _samples

from ._common import guarded, types

__all__ = ["SampleRef", "export", "intern_meter", "meter_of", "metadata_of", "resource_id_of"]

SampleRef = types.SampleRef


def meter_of(sample: types.SampleRef) -> Optional[types.Meter]:
    """The meter (name, type, unit) of a sample."""
    return _samples.lookup_meter(sample.meter)


def resource_id_of(sample: types.SampleRef) -> Optional[str]:
    """The resource id of a sample."""
    return _samples.lookup_resource_id(sample.resource)


def metadata_of(sample: types.SampleRef, key: str) -> Any:
    """One key of a sample's resource metadata, as a Python value (None if absent)."""
    found = _samples.lookup_metadata(sample.resource, key)
    return None if found is None or isinstance(found, types.Value_Null) else found.value


def intern_meter(name: str, type: types.MeterType, unit: str) -> int:
    """The handle of a meter, made if new (for samples this transformer emits)."""
    return _samples.intern_meter(name, type, unit)


def export(implementation: Callable[[], Any]) -> type:
    """The class componentize-py exports as ``pollen:plugin/transformer``."""
    instance: List[Any] = []

    def this() -> Any:
        if not instance:
            instance.append(implementation())
        return instance[0]

    class Transformer(exports.Transformer):
        def configure(self) -> None:
            guarded(lambda: getattr(this(), "configure", lambda: None)())

        def transform(self, batch: List[types.SampleRef]) -> List[types.SampleRef]:
            return guarded(lambda: list(this().transform(batch)))

        def flush(self, shutdown: bool) -> List[types.SampleRef]:
            return guarded(lambda: list(getattr(this(), "flush", lambda _shutdown: [])(shutdown)))

    return Transformer
