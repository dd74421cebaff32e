"""pollen-sdk for Python: write Pollen plugins in Python, built with componentize-py.

A Pollen plugin is a WebAssembly component of one of the three worlds of the
``pollen:plugin@0.2.0`` contract (the ``wit/`` folder). Write a class with the
methods of its kind and export it from your app module, as the Rust SDK's
``export_pollster!`` does::

    from pollen_sdk.pollster import Meter, Sample, export

    class LoadAverage:
        def describe(self):
            return [Meter.gauge("host.load", "load")]

        def poll(self, resources):
            ...

    Pollster = export(LoadAverage)

then ``componentize-py -d wit -w pollster-plugin componentize app -p . -o
load_average.wasm``. ``pollen plugin new NAME --lang python`` writes such a project.

| kind | module | your class has | export as |
|---|---|---|---|
| pollster | ``pollen_sdk.pollster`` | ``describe()``, ``poll(resources)`` | ``Pollster = export(...)`` |
| discoverer | ``pollen_sdk.discoverer`` | ``name()``, ``discover(param)`` | ``Discoverer = export(...)`` |
| transformer | ``pollen_sdk.transformer`` | ``configure()``, ``transform(batch)``, ``flush(shutdown)`` | ``Transformer = export(...)`` |

Errors: raise ``BadConfig`` (the plugin's parameters are wrong), ``HostError`` (a
host function failed) or ``PluginError``; any other exception fails the call too, and
the agent logs it as the exception's type, message and where it was raised.

Each kind's module imports only what its world provides, so import the module of
your plugin's kind (and this package's ``log``, ``config`` and ``Value`` helpers,
which every world has).
"""

from ._common import (
    BadConfig,
    HostError,
    PluginError,
    config,
    entry,
    log,
    metadata,
    value,
)

__all__ = [
    "BadConfig",
    "HostError",
    "PluginError",
    "config",
    "entry",
    "log",
    "metadata",
    "value",
]
