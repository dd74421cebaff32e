"""domain_states: how many domains this host has, and how many of them run.

A host-level pollster in Python: its meters name no discoverer, so the agent calls
it once per cycle with no resources, and it names this host as the resource of its
samples (`this_host()`). It reads the hypervisor: grant it
(`agent.plugins.domain_states.grants: [hypervisor]`).
"""

from pollen_sdk.pollster import Meter, Sample, export, hypervisor, this_host

RUNNING = hypervisor.DomainState.RUNNING


class DomainStates:
    def describe(self):
        return [
            Meter.gauge("host.domains", "domain"),
            Meter.gauge("host.domains.running", "domain"),
        ]

    def poll(self, resources):
        domains = hypervisor.list_domains()
        running = sum(1 for domain in domains if domain.state == RUNNING)
        host = this_host()
        return [Sample(0, host, len(domains)), Sample(1, host, running)]


Pollster = export(DomainStates)
