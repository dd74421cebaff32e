"""{{name}}: a Pollen pollster. Its meter is polled on every instance of this host
(the built-in `local_instances` discoverer), and reads the hypervisor: the agent
grants it with `agent.plugins.{{name}}.grants: [hypervisor]`."""

from pollen_sdk.pollster import Meter, Sample, each_domain, export


class Plugin:
    def describe(self):
        """The meters, in the order samples index them."""
        return [Meter.gauge("{{name}}", "MiB", discovered_by="local_instances")]

    def poll(self, resources):
        """One sample per instance: the memory it has now, in MiB."""
        return [Sample(0, index, stats.memory / 1024) for index, stats in each_domain(resources)]


Pollster = export(Plugin)
