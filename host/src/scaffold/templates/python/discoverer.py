"""{{name}}: a Pollen discoverer. It reports this host's running domains as
resources (id: the domain's UUID), for the pollsters of the sources that name it
(`discovery: [{{name}}]`); the agent grants it the hypervisor with
`agent.plugins.{{name}}.grants: [hypervisor]`."""

from pollen_sdk.discoverer import export, hypervisor, report


class Plugin:
    def name(self):
        return "{{name}}"

    def discover(self, param):
        for domain in hypervisor.list_domains():
            if domain.state == hypervisor.DomainState.RUNNING:
                report(domain.uuid, domain.name, metadata={"display_name": domain.name})


Discoverer = export(Plugin)
