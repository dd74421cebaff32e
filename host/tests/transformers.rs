//! The transformer plugins, through the pipeline file and a sink's chain: each one's
//! arithmetic on known inputs, including first samples, counter resets and samples
//! out of order; what each refuses at configuration; and what a chain does with
//! what a transformer returns.

mod common;

use common::*;
use pollen_host::config;
use pollen_host::pipeline::chain::Chain;
use pollen_host::pipeline::{Agent, BuildError};
use pollen_host::registry::Registry;
use pollen_host::sample::{Meter, MeterType, Owner, Resource, Sample};
use std::sync::Arc;

const TRANSFORMERS: &[&str] =
    &["rate_of_change", "unit_conversion", "delta", "accumulator", "aggregator", "arithmetic"];

/// An agent whose sink `out` has the `transformers` given (YAML, indented under the sink).
fn agent_with(transformers: &str) -> Result<Agent, BuildError> {
    let plugins: Vec<_> = TRANSFORMERS.iter().map(|name| builtin(name)).collect();
    let workspace = Workspace::new(&plugins);
    let path = workspace.write_pipeline("", &through_transformers(transformers));
    let pipeline = config::load(&path).expect("the pipeline parses");
    let agent = Agent::build(pipeline);
    drop(workspace);
    agent
}

fn chain(transformers: &str) -> (Arc<Chain>, Arc<Registry>) {
    let agent = agent_with(transformers).unwrap_or_else(|e| panic!("{e}"));
    (agent.chains["out"].clone(), agent.registry.clone())
}

fn meter(registry: &Registry, name: &str, kind: MeterType, unit: &str) -> u32 {
    registry.intern_meter(Meter { name: name.into(), kind, unit: unit.into() })
}

/// An instance with `cpu_number` in its metadata (or none).
fn instance(registry: &Registry, id: &str, cpu_number: Option<u32>) -> u32 {
    let mut metadata = serde_json::Map::new();
    if let Some(cpus) = cpu_number {
        metadata.insert("cpu_number".into(), cpus.into());
    }
    metadata.insert("display_name".into(), format!("vm {id}").into());
    registry.intern_resource(Resource {
        owner: Owner::of(Some("alice"), Some("p1")),
        metadata: metadata.into(),
        ..Resource::bare(id)
    })
}

const SECOND: i64 = 1_000_000_000;
const T0: i64 = 1_790_000_000 * SECOND;

fn at(meter: u32, resource: u32, volume: f64, seconds: i64) -> Sample {
    Sample { meter, resource, volume, timestamp: T0 + seconds * SECOND }
}

/// The output as (meter name, unit, type, resource id, volume, seconds after T0).
fn described(registry: &Registry, samples: &[Sample]) -> Vec<(String, String, &'static str, String, f64, i64)> {
    samples
        .iter()
        .map(|s| {
            let meter = registry.meter(s.meter).expect("known meter");
            let resource = registry.resource(s.resource).expect("known resource");
            let volume = (s.volume * 1e6).round() / 1e6;
            (
                meter.name.clone(),
                meter.unit.clone(),
                meter.kind.as_str(),
                resource.id.to_string(),
                volume,
                (s.timestamp - T0) / SECOND,
            )
        })
        .collect()
}

fn row(
    name: &str,
    unit: &str,
    kind: &'static str,
    id: &str,
    volume: f64,
    seconds: i64,
) -> (String, String, &'static str, String, f64, i64) {
    (name.into(), unit.into(), kind, id.into(), volume, seconds)
}

const CPU_UTIL: &str = "      - name: rate_of_change\n        parameters:\n          target:\n            name: cpu_util\n            unit: '%'\n            type: gauge\n            max: 100\n            scale: '100.0 / (10**9 * (resource_metadata.cpu_number or 1))'\n";

#[test]
fn rate_of_change_makes_cpu_util_across_first_samples_resets_and_disorder() {
    let (chain, registry) = chain(CPU_UTIL);
    let cpu = meter(&registry, "cpu", MeterType::Cumulative, "ns");
    let two_cpus = instance(&registry, "vm-2", Some(2));
    let unknown_cpus = instance(&registry, "vm-x", None);

    let first = chain.run(vec![at(cpu, two_cpus, 0.0, 0), at(cpu, unknown_cpus, 5e9, 0)], &registry);
    assert!(first.samples.is_empty() && first.failures.is_empty(), "a first sample has no rate");

    // 10 s later: 10 s of CPU on two vCPUs is 50 %; on an instance of unknown size, 100 %.
    let second = chain.run(vec![at(cpu, two_cpus, 10e9, 10), at(cpu, unknown_cpus, 15e9, 10)], &registry);
    assert_eq!(
        described(&registry, &second.samples),
        vec![row("cpu_util", "%", "gauge", "vm-2", 50.0, 10), row("cpu_util", "%", "gauge", "vm-x", 100.0, 10)]
    );

    // Older than the last one: dropped, and the newer one stays the reference.
    let stale = chain.run(vec![at(cpu, two_cpus, 9e9, 5)], &registry);
    assert!(stale.samples.is_empty());

    // The counter went down (the instance rebooted): it grew by its new value.
    let reset = chain.run(vec![at(cpu, two_cpus, 4e9, 20)], &registry);
    assert_eq!(described(&registry, &reset.samples), vec![row("cpu_util", "%", "gauge", "vm-2", 20.0, 20)]);

    // More than all vCPUs busy (a clock jump) is capped at `max`.
    let capped = chain.run(vec![at(cpu, two_cpus, 4e9 + 100e9, 30)], &registry);
    assert_eq!(capped.samples[0].volume, 100.0);

    // Same timestamp twice: a rate of 0, not a division by zero.
    let same = chain.run(vec![at(cpu, two_cpus, 4e9 + 100e9, 30)], &registry);
    assert_eq!(same.samples[0].volume, 0.0);
}

#[test]
fn rate_of_change_maps_names_and_units_with_ceilometers_regexes() {
    let (chain, registry) = chain(
        "      - name: rate_of_change\n        parameters:\n          source:\n            map_from:\n              name: 'network\\.(incoming|outgoing)\\.(bytes|packets)'\n              unit: '(B|packet)'\n          target:\n            map_to:\n              name: 'network.\\1.\\2.rate'\n              unit: '\\1/s'\n            type: gauge\n",
    );
    let bytes = meter(&registry, "network.incoming.bytes", MeterType::Cumulative, "B");
    let packets = meter(&registry, "network.outgoing.packets", MeterType::Cumulative, "packet");
    let vnic = instance(&registry, "vm-1-tap0", None);
    chain.run(vec![at(bytes, vnic, 1000.0, 0), at(packets, vnic, 10.0, 0)], &registry);
    let out = chain.run(vec![at(bytes, vnic, 3000.0, 4), at(packets, vnic, 30.0, 4)], &registry);
    assert_eq!(
        described(&registry, &out.samples),
        vec![
            row("network.incoming.bytes.rate", "B/s", "gauge", "vm-1-tap0", 500.0, 4),
            row("network.outgoing.packets.rate", "packet/s", "gauge", "vm-1-tap0", 5.0, 4),
        ]
    );
}

#[test]
fn unit_conversion_scales_by_expression_or_factor() {
    let (chain, registry) = chain(
        "      - name: unit_conversion\n        parameters:\n          target:\n            name: memory.kib\n            unit: KiB\n            scale: 'volume * 1.0 / 1024.0'\n      - name: unit_conversion\n        parameters:\n          target:\n            scale: 1000\n            max: 5000000\n",
    );
    let memory = meter(&registry, "memory", MeterType::Gauge, "B");
    let vm = instance(&registry, "vm-1", None);
    let out = chain.run(vec![at(memory, vm, 2048.0, 0), at(memory, vm, 1e9, 1)], &registry);
    // 2048 B = 2 KiB, times 1000; 1e9 B = 976562.5 KiB, times 1000, capped at 5e6.
    assert_eq!(
        described(&registry, &out.samples),
        vec![row("memory.kib", "KiB", "gauge", "vm-1", 2000.0, 0), row("memory.kib", "KiB", "gauge", "vm-1", 5e6, 1)]
    );
}

#[test]
fn delta_gives_changes_and_drops_negative_ones_with_growth_only() {
    let (chain, registry) = chain(
        "      - name: delta\n        parameters:\n          target:\n            name: cpu.delta\n          growth_only: true\n",
    );
    let cpu = meter(&registry, "cpu", MeterType::Cumulative, "ns");
    let vm = instance(&registry, "vm-1", None);
    assert!(chain.run(vec![at(cpu, vm, 100.0, 0)], &registry).samples.is_empty(), "no predecessor");
    let out = chain.run(vec![at(cpu, vm, 250.0, 10), at(cpu, vm, 200.0, 20), at(cpu, vm, 260.0, 30)], &registry);
    assert_eq!(
        described(&registry, &out.samples),
        vec![row("cpu.delta", "ns", "delta", "vm-1", 150.0, 10), row("cpu.delta", "ns", "delta", "vm-1", 60.0, 30)]
    );
}

#[test]
fn accumulator_holds_samples_until_size_and_lets_all_go_at_shutdown() {
    let (chain, registry) = chain("      - name: accumulator\n        parameters:\n          size: 3\n");
    let cpu = meter(&registry, "cpu", MeterType::Cumulative, "ns");
    let vm = instance(&registry, "vm-1", None);
    assert!(chain.run(vec![at(cpu, vm, 1.0, 0), at(cpu, vm, 2.0, 1)], &registry).samples.is_empty());
    let released = chain.run(vec![at(cpu, vm, 3.0, 2)], &registry);
    assert_eq!(released.samples.iter().map(|s| s.volume).collect::<Vec<_>>(), vec![1.0, 2.0, 3.0]);
    assert!(chain.run(vec![at(cpu, vm, 4.0, 3)], &registry).samples.is_empty());
    let at_shutdown = chain.finish(&registry);
    assert_eq!(at_shutdown.samples.iter().map(|s| s.volume).collect::<Vec<_>>(), vec![4.0]);
}

#[test]
fn aggregator_averages_gauges_keeps_the_last_counter_and_can_drop_metadata() {
    let (chain, registry) = chain(
        "      - name: aggregator\n        parameters:\n          size: 4\n          timestamp: last\n          resource_metadata: drop\n",
    );
    let memory = meter(&registry, "memory.usage", MeterType::Gauge, "MB");
    let cpu = meter(&registry, "cpu", MeterType::Cumulative, "ns");
    let vm = instance(&registry, "vm-1", Some(2));
    assert!(chain.run(vec![at(memory, vm, 100.0, 0), at(cpu, vm, 1000.0, 0)], &registry).samples.is_empty());
    let out = chain.run(vec![at(memory, vm, 300.0, 10), at(cpu, vm, 5000.0, 10)], &registry);
    assert_eq!(
        described(&registry, &out.samples),
        vec![row("memory.usage", "MB", "gauge", "vm-1", 200.0, 10), row("cpu", "ns", "cumulative", "vm-1", 5000.0, 10)]
    );
    let resource = registry.resource(out.samples[0].resource).unwrap();
    assert!(resource.metadata.is_empty(), "resource_metadata: drop");
    assert_eq!((resource.user_id(), resource.project_id()), (Some("alice"), Some("p1")));
    assert!(!registry.resource(vm).unwrap().metadata.is_empty(), "the instance itself keeps its metadata");

    // Below size, nothing until shutdown.
    assert!(chain.run(vec![at(memory, vm, 50.0, 20)], &registry).samples.is_empty());
    assert_eq!(chain.finish(&registry).samples[0].volume, 50.0);
}

#[test]
fn aggregator_emits_after_its_retention_time() {
    let (chain, registry) =
        chain("      - name: aggregator\n        parameters:\n          retention_time: 60\n          user_id: last\n");
    let memory = meter(&registry, "memory.usage", MeterType::Gauge, "MB");
    let vm = instance(&registry, "vm-1", None);
    assert!(chain.run(vec![at(memory, vm, 10.0, 0), at(memory, vm, 20.0, 30)], &registry).samples.is_empty());
    let out = chain.run(vec![at(memory, vm, 60.0, 60)], &registry);
    assert_eq!(described(&registry, &out.samples), vec![row("memory.usage", "MB", "gauge", "vm-1", 30.0, 0)]);
    assert_eq!(out.samples[0].resource, vm, "same owner and metadata: the instance's own handle");
}

const MEMORY_UTIL: &str = "      - name: arithmetic\n        parameters:\n          target:\n            name: memory.util\n            unit: '%'\n            type: gauge\n            expr: '$(memory.usage) / $(memory) * 100'\n";

#[test]
fn arithmetic_combines_meters_of_one_resource_and_consumes_them() {
    let (chain, registry) = chain(MEMORY_UTIL);
    let usage = meter(&registry, "memory.usage", MeterType::Gauge, "MB");
    let memory = meter(&registry, "memory", MeterType::Gauge, "MB");
    let cpu = meter(&registry, "cpu", MeterType::Cumulative, "ns");
    let (a, b, c) =
        (instance(&registry, "vm-a", None), instance(&registry, "vm-b", None), instance(&registry, "vm-c", None));
    let out = chain.run(
        vec![
            at(usage, a, 512.0, 0),
            at(memory, a, 2048.0, 0),
            at(cpu, a, 1.0, 0),
            // vm-b lacks `memory`: nothing for it yet.
            at(usage, b, 100.0, 0),
            // vm-c has `memory` 0: no value (division by zero), skipped.
            at(usage, c, 1.0, 1),
            at(memory, c, 0.0, 1),
        ],
        &registry,
    );
    assert_eq!(described(&registry, &out.samples), vec![row("memory.util", "%", "gauge", "vm-a", 25.0, 1)]);
    assert_eq!(out.samples[0].resource, a);
    // vm-b's `memory` arrives next cycle: its usage was kept.
    let later = chain.run(vec![at(memory, b, 400.0, 60)], &registry);
    assert_eq!(described(&registry, &later.samples), vec![row("memory.util", "%", "gauge", "vm-b", 25.0, 60)]);
}

#[test]
fn a_chain_of_three_composes_in_order() {
    let (chain, registry) = chain(&format!(
        "      - name: unit_conversion\n        parameters:\n          target:\n            scale: 2\n{CPU_UTIL}      - name: unit_conversion\n        parameters:\n          target:\n            name: cpu_util.ratio\n            unit: '1'\n            scale: volume / 100\n"
    ));
    let cpu = meter(&registry, "cpu", MeterType::Cumulative, "ns");
    let vm = instance(&registry, "vm-4", Some(4));
    chain.run(vec![at(cpu, vm, 0.0, 0)], &registry);
    // 10 s of CPU in 10 s, doubled: 2 of 4 vCPUs busy, 50 %, as a ratio 0.5.
    let out = chain.run(vec![at(cpu, vm, 10e9, 10)], &registry);
    assert_eq!(described(&registry, &out.samples), vec![row("cpu_util.ratio", "1", "gauge", "vm-4", 0.5, 10)]);
}

/// The text of the configuration errors an agent refuses to start with.
fn refusal(transformers: &str) -> String {
    match agent_with(transformers) {
        Ok(_) => panic!("accepted: {transformers}"),
        Err(error @ BuildError::Config(_)) => error.to_string(),
        Err(other) => panic!("not a configuration error: {other}"),
    }
}

#[test]
fn bad_transformer_configuration_is_refused_with_its_place_and_reason() {
    let message = refusal("      - name: rate_of_chnage\n");
    assert!(
        message.contains("sinks[0].transformers[0]") && message.contains("did you mean `rate_of_change`"),
        "{message}"
    );

    let message = refusal("      - name: rate_of_change\n        parameters:\n          target:\n            scale: '__import__(\"os\")'\n");
    assert!(message.contains("`target.scale`") && message.contains("unexpected character"), "{message}");

    let message =
        refusal("      - name: rate_of_change\n        parameters:\n          target:\n            nmae: cpu_util\n");
    assert!(message.contains("unknown parameter `target.nmae`") && message.contains("target.name"), "{message}");

    let message =
        refusal("      - name: arithmetic\n        parameters:\n          target:\n            expr: 'volume * 2'\n");
    assert!(message.contains("at least one meter"), "{message}");

    let message = refusal("      - name: accumulator\n        parameters:\n          size: many\n");
    assert!(message.contains("`size`: `many` is not a number"), "{message}");

    let message = refusal("      - name: aggregator\n        parameters:\n          user_id: middle\n");
    assert!(message.contains("`user_id`: `middle` is not one of first, last"), "{message}");
}

#[test]
fn transformer_parameters_that_are_lists_are_refused_when_the_file_is_read() {
    let workspace = Workspace::new(&[]);
    let path = workspace.write_pipeline(
        "",
        &through_transformers(
            "      - name: rate_of_change\n        parameters:\n          target:\n            scale: [1, 2]\n",
        ),
    );
    let message = config::load(&path).expect_err("refused").to_string();
    assert!(message.contains("sinks[0].transformers[0].parameters: `target.scale` is a list"), "{message}");
}

#[test]
fn a_pollster_is_not_a_transformer() {
    let workspace = Workspace::new(&[builtin("cpu")]);
    let path = workspace.write_pipeline(&grants(&["cpu"]), &through_transformers("      - name: cpu\n"));
    let error = Agent::build(config::load(&path).unwrap()).err().expect("refused");
    assert!(error.to_string().contains("plugin `cpu` is a pollster, not a transformer"), "{error}");
}

#[test]
fn what_a_transformer_returns_is_checked() {
    // The echo test transformer emits, on flush, a sample on resource handle 0: here no
    // resource was ever interned, so handle 0 is unknown and the sample is refused.
    let workspace = Workspace::new(&[hostile("echo_transformer")]);
    let path = workspace.write_pipeline("", &through_transformers("      - name: echo_transformer\n"));
    let agent = Agent::build(config::load(&path).unwrap()).expect("agent");
    let output = agent.chains["out"].finish(&agent.registry);
    assert_eq!((output.samples.len(), output.malformed), (0, 1));
}

#[test]
fn a_reload_keeps_unchanged_transformers_with_their_state_and_replaces_changed_ones() {
    let plugins: Vec<_> = TRANSFORMERS.iter().map(|name| builtin(name)).collect();
    let workspace = Workspace::new(&plugins);
    let sinks = |scale: &str| {
        format!(
            "sources:\n  - name: s\n    meters: ['*']\n    sinks: [util, mem]\nsinks:\n  - name: util\n    transformers:\n      - name: rate_of_change\n        parameters: {{target: {{name: cpu_util, scale: '{scale}'}}}}\n    publishers: ['stdout://']\n  - name: mem\n    transformers:\n{MEMORY_UTIL}    publishers: ['stdout://']\n"
        )
    };
    let path = workspace.write_pipeline("", &sinks("100.0 / 10**9"));
    let agent = Agent::build(config::load(&path).unwrap()).unwrap();
    let registry = agent.registry.clone();
    let cpu = meter(&registry, "cpu", MeterType::Cumulative, "ns");
    let vm = instance(&registry, "vm-1", None);
    agent.chains["util"].run(vec![at(cpu, vm, 0.0, 0)], &registry);

    let same = agent.rebuild(config::load(&path).unwrap()).unwrap();
    assert!(Arc::ptr_eq(&same.chains["util"], &agent.chains["util"]), "an unchanged sink keeps its chain");
    assert!(Arc::ptr_eq(&same.registry, &agent.registry));
    let out = same.chains["util"].run(vec![at(cpu, vm, 10e9, 10)], &registry);
    assert_eq!(out.samples.len(), 1, "the kept chain remembers the sample before the reload");

    let path = workspace.write_pipeline("", &sinks("1.0 / 10**9"));
    let changed = same.rebuild(config::load(&path).unwrap()).unwrap();
    assert!(!Arc::ptr_eq(&changed.chains["util"], &same.chains["util"]), "new parameters: a new instance");
    assert!(Arc::ptr_eq(&changed.chains["mem"], &same.chains["mem"]), "the other sink is kept");
    let fresh = changed.chains["util"].run(vec![at(cpu, vm, 20e9, 20)], &registry);
    assert!(fresh.samples.is_empty(), "a replaced transformer starts clean: a first sample again");
}
