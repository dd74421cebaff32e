#!/usr/bin/env python3
"""Ceilometer's compute meters, read from Ceilometer's own source: the oracle table
Pollen's compute plugins are tested against (tests/data/ceilometer/compute-meters.tsv).

    scripts/ceilometer_oracle.py [VERSION]     # default 27.0.0

downloads that release's wheel from PyPI (`pip download`, nothing installed), reads
its source with Python's `ast` (nothing of it is imported or run) and prints:

- one row per compute meter (`[ceilometer.poll.compute]` in its entry points): name,
  type, unit, the expression of its resource id, the metadata keys the pollster adds
  to the instance's, whether the libvirt inspector implements what it reads, and the
  file and line of the class that says so;
- one row per libvirt domain state: the `state` (Nova's vm state) and `status`
  Ceilometer guesses from it (`compute/virt/libvirt/utils.py`);
- one row per key of the instance metadata every sample carries
  (`compute/pollsters/util.py`), for instances found from libvirt's metadata
  (`compute/discovery.py`, Ceilometer's default discovery method), with whether it
  is always there.

A new Ceilometer release is checked by running this with its version and diffing
the output against the table: `make ceilometer-oracle VERSION=28.0.0`.
"""

import ast
import configparser
import pathlib
import subprocess
import sys
import tempfile
import zipfile

TYPES = {"TYPE_GAUGE": "gauge", "TYPE_CUMULATIVE": "cumulative", "TYPE_DELTA": "delta"}


def unpack(version, into):
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", f"ceilometer=={version}", "-d", into],
        check=True,
    )
    wheel = next(pathlib.Path(into).glob("ceilometer-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(into)
    return pathlib.Path(into)


class Source:
    """The classes of the modules read so far, by module and name."""

    def __init__(self, root):
        self.root = root
        self.modules = {}

    def module(self, dotted):
        if dotted not in self.modules:
            path = self.root / (dotted.replace(".", "/") + ".py")
            if not path.exists():
                path = self.root / dotted.replace(".", "/") / "__init__.py"
            tree = ast.parse(path.read_text(), str(path))
            imports = {}
            for node in tree.body:
                if isinstance(node, ast.ImportFrom) and node.module:
                    for alias in node.names:
                        imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
            self.modules[dotted] = (path.relative_to(self.root), classes, imports, tree)
        return self.modules[dotted]

    def resolve_base(self, dotted, base):
        """The (module, class) a base expression of a class in `dotted` names."""
        _, classes, imports, _ = self.module(dotted)
        if isinstance(base, ast.Name):
            if base.id in classes:
                return dotted, base.id
            target = imports.get(base.id)
            if target:
                module, _, name = target.rpartition(".")
                return module, name
        if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
            target = imports.get(base.value.id)
            if target:
                return target, base.attr
        return None

    def lineage(self, dotted, name):
        """The class and its bases, nearest first: (module, ClassDef) pairs."""
        chain = []
        while True:
            _, classes, _, _ = self.module(dotted)
            node = classes.get(name)
            if node is None:
                return chain
            chain.append((dotted, node))
            parent = next((self.resolve_base(dotted, b) for b in node.bases if self.resolve_base(dotted, b)), None)
            if parent is None:
                return chain
            dotted, name = parent


def attribute(chain, name):
    for _, node in chain:
        for item in node.body:
            if isinstance(item, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in item.targets):
                value = item.value
                if isinstance(value, ast.Constant):
                    return value.value
                if isinstance(value, ast.Attribute):
                    return value.attr
    return None


def method(chain, name):
    for _, node in chain:
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == name:
                return item
    return None


def resource_id(function):
    """The expressions the function returns, ` or `-separated (one per branch)."""
    returns = [ast.unparse(n.value) for n in ast.walk(function) if isinstance(n, ast.Return) and n.value]
    return " | ".join(returns)


def added_keys(function):
    """The metadata keys the function's dict carries: dict literal keys, keys listed
    in a comprehension's iterable, subscript assignments."""
    keys = []
    for node in ast.walk(function):
        if isinstance(node, ast.Dict):
            keys += [k.value for k in node.keys if isinstance(k, ast.Constant)]
        if isinstance(node, ast.comprehension) and isinstance(node.iter, ast.List):
            keys += [e.value for e in node.iter.elts if isinstance(e, ast.Constant)]
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
                    keys.append(target.slice.value)
    return sorted(set(keys))


def inspector_methods(source):
    path = source.root / "ceilometer/compute/virt/libvirt/inspector.py"
    tree = ast.parse(path.read_text())
    inspector = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "LibvirtInspector")
    return {f.name for f in inspector.body if isinstance(f, ast.FunctionDef)}


def meter_rows(source):
    entry_points = configparser.ConfigParser(delimiters=("=",))
    entry_points.optionxform = str
    info = next(source.root.glob("ceilometer-*.dist-info"))
    entry_points.read(info / "entry_points.txt")
    implemented = inspector_methods(source)
    rows = []
    for meter, target in sorted(entry_points["ceilometer.poll.compute"].items()):
        dotted, _, name = target.strip().partition(":")
        chain = source.lineage(dotted, name)
        path = source.module(dotted)[0]
        unit = attribute(chain, "sample_unit")
        kind = TYPES[attribute(chain, "sample_type")]
        assert attribute(chain, "sample_name") == meter, (meter, target)
        ids = method(chain, "get_resource_id")
        extra = method(chain, "get_additional_metadata")
        reads = attribute(chain, "inspector_method")
        libvirt = "yes" if reads is None or reads in implemented else f"no ({reads} not implemented)"
        rows.append(
            (
                meter,
                kind,
                unit,
                resource_id(ids) if ids else "instance.id",
                ",".join(added_keys(extra)) if extra else "",
                libvirt,
                f"ceilometer/{path.relative_to('ceilometer')}:{chain[0][1].lineno} ({name})",
            )
        )
    return rows


def instance_metadata_rows(source):
    """Keys of `_get_metadata_from_object`, for an instance of the libvirt discovery."""
    path = source.root / "ceilometer/compute/pollsters/util.py"
    tree = ast.parse(path.read_text())
    properties = next(
        n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "INSTANCE_PROPERTIES"
    )
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_get_metadata_from_object")

    # What the libvirt discovery gives an instance: its `instance_data` literal, and
    # `image_meta` only when the domain's Nova metadata has an <image> element.
    discovery = ast.parse((source.root / "ceilometer/compute/discovery.py").read_text())
    attributes = set()
    for node in ast.walk(discovery):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "instance_data" for t in node.targets):
            attributes |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}

    rows = []

    def add(key, line, always):
        if key not in [r[0] for r in rows]:
            rows.append((key, "always" if always else "optional", f"ceilometer/compute/pollsters/util.py:{line}"))

    def visit(statements, always):
        for node in statements:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
                if any(isinstance(t, ast.Name) and t.id == "metadata" for t in node.targets):
                    for key in node.value.keys:
                        add(key.value, key.lineno, always)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
                        add(target.slice.value, node.lineno, always)
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if test.startswith("hasattr(instance, 'image_meta')"):
                    # Only when Nova wrote the image's properties into the domain.
                    visit(node.body, False)
                else:
                    # The image branches: each sets the same keys.
                    visit(node.body, always)
                    visit(node.orelse, always)
            elif isinstance(node, ast.For) and ast.unparse(node.iter) == "INSTANCE_PROPERTIES":
                for element in properties.elts:
                    if element.value in attributes:
                        add(element.value, element.lineno, always)

    visit(function.body, True)
    return rows


def state_rows(source):
    """libvirt's state numbers with Ceilometer's `LIBVIRT_POWER_STATE` (the metadata's
    `state`) and `LIBVIRT_STATUS` (its `status`)."""
    relative = "ceilometer/compute/virt/libvirt/utils.py"
    tree = ast.parse((source.root / relative).read_text())
    numbers, maps, lines = {}, {}, {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        if isinstance(node.value, ast.Constant) and name.startswith("VIR_DOMAIN_"):
            numbers[name] = node.value.value
        if name in ("LIBVIRT_POWER_STATE", "LIBVIRT_STATUS"):
            maps[name] = {k.id: v.value for k, v in zip(node.value.keys, node.value.values)}
            lines[name] = node.lineno
    rows = []
    for constant, number in sorted(numbers.items(), key=lambda item: item[1]):
        state, status = maps["LIBVIRT_POWER_STATE"][constant], maps["LIBVIRT_STATUS"][constant]
        cite = f"{relative}:{lines['LIBVIRT_POWER_STATE']},{lines['LIBVIRT_STATUS']}"
        rows.append((str(number), constant, state, status, cite))
    return rows


def main():
    version = sys.argv[1] if len(sys.argv) > 1 else "27.0.0"
    with tempfile.TemporaryDirectory() as scratch:
        source = Source(unpack(version, scratch))
        print(f"# Ceilometer {version}'s compute meters, read from its source by scripts/ceilometer_oracle.py.")
        print("# meter\ttype\tunit\tresource id\tmetadata added\tlibvirt\tsource")
        for row in meter_rows(source):
            print("meter\t" + "\t".join(row))
        print("# libvirt state\tconstant\tstate (vm state)\tstatus\tsource")
        for row in state_rows(source):
            print("state\t" + "\t".join(row))
        print("# instance metadata key\tpresence\tsource")
        for row in instance_metadata_rows(source):
            print("instance\t" + "\t".join(row))


if __name__ == "__main__":
    main()
