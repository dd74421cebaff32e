"""{{name}}: a Pollen transformer. It multiplies every sample's volume by its sink's
`factor` parameter (default 1):
`transformers: [{name: {{name}}, parameters: {factor: 2}}]`."""

import dataclasses

from pollen_sdk import BadConfig, config
from pollen_sdk.transformer import export


class Plugin:
    def configure(self):
        """Reads the parameters; an error here is what `pollen validate` reports."""
        text = config.get("factor", "1")
        try:
            self.factor = float(text)
        except ValueError:
            raise BadConfig(f"`factor`: `{text}` is not a number")

    def transform(self, batch):
        return [dataclasses.replace(sample, volume=sample.volume * self.factor) for sample in batch]

    def flush(self, shutdown):
        """Nothing is held back between batches."""
        return []


Transformer = export(Plugin)
