# Pollen. `make help` lists the targets.
CARGO ?= cargo
PLUGIN_TARGET := wasm32-wasip2
PLUGIN_PROFILE := plugin
PLUGINS := local_instances cpu memory instance disk network perf \
	rate_of_change unit_conversion delta accumulator aggregator arithmetic
# The central agent's plugins: a folder of their own (plugins/dist-central), since
# a compute host has no OpenStack credentials to grant them.
CENTRAL_PLUGINS := glance_images image_size cinder_volumes volume_size cinder_snapshots volume_snapshot_size \
	cinder_backups volume_backup_size \
	cinder_pools volume_pool_capacity cinder_services volume_service_health keystone_endpoints keystone_tenants dynamic \
	rate_of_change unit_conversion delta accumulator aggregator arithmetic
TEST_PLUGINS := spin_forever grow_forever trap liar liar_discoverer echo_transformer nosy_transformer unknown_world prober \
	sleeper sleepy_transformer log_flood flood_discoverer meter_maker \
	thief_transformer http_probe namer memory_scan
TARGET_DIR ?= $(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null || echo target)
WASM_OUT := $(TARGET_DIR)/$(PLUGIN_TARGET)/$(PLUGIN_PROFILE)

.PHONY: ceilometer-oracle help setup plugins python-plugins test-plugins build run test lint bench deb hypervisor clean

help:
	@echo "make setup         install what this machine lacks (libvirt-dev, the wasm32-wasip2 target, libvirtd with QEMU, a Pushgateway, Gnocchi, Keystone, Glance, Cinder and Ceilometer 27 in a venv)"
	@echo "make plugins       build the built-in plugins into plugins/dist/"
	@echo "make python-plugins build the Python plugins (plugins/python/) into plugins/dist-python/"
	@echo "make run           build everything and run the agent on pipeline.yaml"
	@echo "make test          set up, build, lint and run every test"
	@echo "make bench         run the benchmarks"
	@echo "make deb           build the Debian package (target/deb/pollen_VERSION_ARCH.deb)"
	@echo "make hypervisor    boot three demo domains on the local libvirtd (qemu:///system)"

setup:
	./scripts/setup.sh
	./scripts/hypervisor.sh start
	./scripts/gnocchi.sh start
	./scripts/openstack.sh start
	./scripts/ceilometer.sh install
	./scripts/python-plugins.sh install

plugins:
	$(CARGO) build --target $(PLUGIN_TARGET) --profile $(PLUGIN_PROFILE) $(addprefix -p ,$(sort $(PLUGINS) $(CENTRAL_PLUGINS)))
	mkdir -p plugins/dist plugins/dist-central
	for p in $(PLUGINS); do cp $(WASM_OUT)/$$p.wasm plugins/dist/$$p.wasm; done
	for p in $(CENTRAL_PLUGINS); do cp $(WASM_OUT)/$$p.wasm plugins/dist-central/$$p.wasm; done

# The repository's Python plugins (plugins/python/*), with componentize-py: a
# folder of their own, since each carries a Python interpreter (~19 MB).
PYTHON_PLUGINS := $(notdir $(wildcard plugins/python/*))
python-plugins: $(foreach p,$(PYTHON_PLUGINS),plugins/dist-python/$(p).wasm)

plugins/dist-python/%.wasm: plugins/python/%/app.py plugins/python/%/world.wit $(wildcard sdk/python/pollen_sdk/*.py wit/*.wit)
	./scripts/python-plugins.sh build plugins/python/$* $@

test-plugins:
	$(CARGO) build --target $(PLUGIN_TARGET) --profile $(PLUGIN_PROFILE) $(addprefix -p ,$(TEST_PLUGINS))
	mkdir -p tests/plugins/dist
	for p in $(TEST_PLUGINS); do cp $(WASM_OUT)/$$p.wasm tests/plugins/dist/$$p.wasm; done

build: plugins
	$(CARGO) build -p pollen-host

run: setup build
	$(CARGO) run -p pollen-host -- run --config pipeline.yaml

# Not the dynamic plugin: it turns on serde_json's `preserve_order`, which one cargo
# invocation would unify into the host's build and change its JSON.
TEST_CRATES := -p pollen-host -p pollen-sdk -p volume_pool_capacity -p pollen-dynamic -p pollen-pytext \
	--features pollen-sdk/conversion,pollen-sdk/nova,pollen-sdk/openstack --lib --tests
PHASE := ./scripts/phase.sh

# Each phase says how long it took (`phase clippy: 86.7 s`); docs/testing.md has
# the figures of a cold and a warm run.
test:
	$(PHASE) setup $(MAKE) --no-print-directory setup
	$(PHASE) plugins $(MAKE) --no-print-directory plugins test-plugins python-plugins
	$(PHASE) fmt $(CARGO) fmt --all -- --check
	$(PHASE) clippy $(CARGO) clippy --workspace --all-targets -- -D warnings
	$(PHASE) sdk-package $(CARGO) publish --dry-run --allow-dirty -p pollen-sdk
	$(PHASE) build $(CARGO) test $(TEST_CRATES) --no-run
	$(PHASE) tests $(CARGO) test $(TEST_CRATES)

bench: setup plugins test-plugins python-plugins
	./scripts/bench-peers.sh
	$(CARGO) bench -p pollen-host --bench core
	POLLEN_BENCH_LIBVIRTD=1 $(CARGO) bench -p pollen-host --bench compute
	POLLEN_BENCH_LIBVIRTD=1 $(CARGO) bench -p pollen-host --bench e2e
	$(CARGO) bench -p pollen-host --bench central
	$(CARGO) bench -p pollen-host --bench coordination
	$(CARGO) bench -p pollen-host --bench collector
	$(CARGO) bench -p pollen-host --bench api
	$(CARGO) bench -p pollen-host --bench startup

# The Debian package: the release binary, the built-in plugins, the systemd units and
# an example configuration (scripts/deb.sh), as target/deb/pollen_VERSION_ARCH.deb.
deb: setup plugins
	$(CARGO) build --release -p pollen-host
	./scripts/deb.sh

# Ceilometer's compute meters read from its source, against the table the tests use.
VERSION ?= 27.0.0
ceilometer-oracle:
	python3 scripts/ceilometer_oracle.py $(VERSION) | diff -u tests/data/ceilometer/compute-meters.tsv - && echo "Ceilometer $(VERSION): no difference from the table"

hypervisor: setup
	./scripts/hypervisor.sh boot 3

clean:
	rm -rf plugins/dist tests/plugins/dist
	$(CARGO) clean
