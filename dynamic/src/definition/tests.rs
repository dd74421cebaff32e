use super::*;
use serde_json::json;

fn definitions(yaml: &str) -> Vec<Json> {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    match serde_json::to_value(value).unwrap() {
        Json::Array(items) => items,
        other => panic!("not a list: {other}"),
    }
}

fn parse(yaml: &str) -> Result<Definition, Vec<DefinitionError>> {
    let items = definitions(yaml);
    Definition::parse(&items[0]).map(|(definition, _)| definition)
}

fn problems(yaml: &str) -> Vec<String> {
    parse(yaml).expect_err("refused").into_iter().map(|p| p.to_string()).collect()
}

#[test]
fn every_example_of_ceilometer_s_documentation_parses() {
    let examples = definitions(include_str!("../../tests/data/ceilometer-docs.yaml"));
    assert_eq!(examples.len(), 12);
    for (index, example) in examples.iter().enumerate() {
        let name = example["name"].as_str().unwrap();
        match Definition::parse(example) {
            Ok((definition, _)) => {
                assert_eq!(definition.name, name);
                assert!(!name.contains("radosgw"), "{name} should be refused for its module");
            }
            Err(problems) if name == "dynamic.linked.response" => {
                // The documentation's two paging examples have no `endpoint_type`, which
                // Ceilometer 27 requires of an OpenStack pollster too
                // (`PollsterDefinitions.standard_definitions`, `validate_missing`).
                assert_eq!(problems.len(), 1, "{problems:?}");
                assert_eq!(problems[0].key, "endpoint_type");
            }
            Err(problems) => {
                // RadosGW's need `awsauth.S3Auth`: refused for that alone, with what to write.
                assert!(name.contains("radosgw"), "example {index} ({name}): {problems:?}");
                assert_eq!(problems.iter().filter(|p| !p.warning).count(), 1, "{problems:?}");
                let problem = problems.iter().find(|p| !p.warning).unwrap();
                assert_eq!(problem.key, "module");
                assert!(problem.message.contains("cannot import `awsauth.S3Auth`"), "{problem}");
                assert!(problem.message.contains("agent.credentials"), "{problem}");
            }
        }
    }
}

#[test]
fn ceilometer_s_defaults_apply() {
    let definition = parse(
        "- name: dynamic.magnum.cluster\n  sample_type: gauge\n  unit: cluster\n  value_attribute: status\n  endpoint_type: container-infra\n  url_path: v1/clusters/detail\n",
    )
    .unwrap();
    assert_eq!(definition.api, Api::OpenStack { endpoint_type: "container-infra".into() });
    assert_eq!(definition.default_discovery().as_deref(), Some("endpoint:container-infra"));
    assert_eq!(definition.url_path, UrlPath::Literal("v1/clusters/detail".into()));
    assert_eq!(definition.default_value, json!(-1));
    assert!(definition.preserve_mapped_metadata);
    assert_eq!(definition.user_id_attribute.text(), "user_id");
    assert_eq!(definition.project_id_attribute.text(), "project_id");
    assert_eq!(definition.resource_id_attribute.text(), "id");
    assert_eq!(definition.timeout, Some(30.0));
    assert_eq!(definition.response_handlers, [Handler::Json]);
    assert_eq!(definition.namespaces, ["central"]);
    assert!(definition.runs_in("central") && !definition.runs_in("compute"));
    assert!(definition.multi_metric.is_none() && definition.metadata_fields.is_empty());
}

#[test]
fn multi_metric_names_and_url_expressions() {
    let definition = parse(
        "- name: dynamic.api.request.{category}\n  sample_type: gauge\n  unit: request\n  value_attribute: '[categories].ops'\n  url_path: http://api.example/usage\n",
    )
    .unwrap();
    assert_eq!(
        definition.multi_metric,
        Some(MultiMetric { name_attribute: "category".into(), list_key: "categories".into() })
    );
    assert_eq!(definition.value_attribute.text(), "ops");
    assert_eq!(definition.sub_meter("get_obj").as_deref(), Some("dynamic.api.request.get_obj"));
    assert_eq!(definition.api, Api::External { auth: ExternalAuth::AgentCredential });
    assert_eq!(definition.default_discovery(), None);
    assert!(matches!(url_path("'/v3/projects/' + str(sample['project_id'])"), UrlPath::Expression { .. }));
    assert_eq!(
        url_path("/v2.1/servers/detail?all_tenants=true"),
        UrlPath::Literal("/v2.1/servers/detail?all_tenants=true".into())
    );
    assert_eq!(url_path("v1/clusters/detail"), UrlPath::Literal("v1/clusters/detail".into()));
    assert_eq!(url_path("'v3/users'"), UrlPath::Literal("v3/users".into()));
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let found = problems(
        "- name: 'bad name!'\n  sample_type: gaug\n  unit: u\n  value_atribute: status\n  url_path: v1/x\n  timeout: -1\n  response_handlers: [json, yaml]\n  metadata_fields: ['a | __import__(\"os\")']\n",
    );
    let text = found.join("\n");
    assert!(text.contains("value_atribute: unknown key (did you mean `value_attribute`?)"), "{text}");
    assert!(text.contains("name: `bad name!` is not a meter name"), "{text}");
    assert!(text.contains("sample_type: `gaug` is not a sample type"), "{text}");
    assert!(text.contains("value_attribute: is required"), "{text}");
    assert!(text.contains("endpoint_type: is required"), "{text}");
    assert!(text.contains("timeout: must be a positive number of seconds"), "{text}");
    assert!(text.contains("response_handlers[1]: \"yaml\" is not a handler"), "{text}");
    assert!(text.contains("metadata_fields[0]: `__import__`: names with double underscores"), "{text}");
    assert!(text.contains("(at character 5)"), "{text}");
}

#[test]
fn what_pollen_cannot_do_is_refused_clearly() {
    let found = problems("- name: host.load\n  sample_type: gauge\n  unit: load\n  value_attribute: out\n  host_command: cat /proc/loadavg\n");
    assert!(found.iter().any(|p| p.starts_with("host_command: is refused: Pollen runs no command")), "{found:?}");
    let found = problems("- name: x\n  sample_type: gauge\n  unit: u\n  value_attribute: v\n  url_path: https://x/y\n  module: m\n  authentication_object: A\n  barbican_secret_id: s\n");
    assert!(found.iter().any(|p| p.starts_with("barbican_secret_id: is not supported")), "{found:?}");
    let found =
        problems("- name: x.{cat}\n  sample_type: gauge\n  unit: u\n  value_attribute: ops\n  url_path: https://x/y\n");
    assert!(found.iter().any(|p| p.contains("takes `[list].field`")), "{found:?}");
    let items = definitions(
        "- name: x\n  sample_type: gauge\n  unit: u\n  value_attribute: v\n  url_path: https://x/y\n  module: requests.auth\n  authentication_object: HTTPBasicAuth\n  authentication_parameters: 'admin, secret'\n",
    );
    let (definition, warnings) = Definition::parse(&items[0]).unwrap();
    assert_eq!(definition.api, Api::External { auth: ExternalAuth::Basic });
    assert!(warnings[0].warning && warnings[0].key == "authentication_parameters", "{warnings:?}");
}

#[test]
fn extra_metadata_inherits_and_checks() {
    let items = definitions(include_str!("../../tests/data/ceilometer-docs.yaml"));
    let (definition, _) = Definition::parse(&items[11]).unwrap();
    let extra = &definition.extra_metadata_fields;
    assert_eq!(extra.len(), 3);
    assert_eq!((extra[0].name.as_str(), extra[0].cache_seconds), ("project_name", 1800));
    assert_eq!((extra[1].name.as_str(), extra[1].cache_seconds), ("domain_id", 3600));
    assert_eq!(extra[0].value.text(), "name");
    assert!(matches!(extra[2].url_path, UrlPath::Expression { .. }));
    let found = problems(
        "- name: x\n  sample_type: gauge\n  unit: u\n  value_attribute: v\n  endpoint_type: compute\n  url_path: servers\n  extra_metadata_fields:\n    - name: p\n      url_path: \"'/v3/projects/' + sample['project_id']\"\n      valeu: name\n",
    );
    let text = found.join("\n");
    assert!(text.contains("extra_metadata_fields[0].endpoint_type: is required"), "{text}");
    assert!(text.contains("extra_metadata_fields[0].valeu: unknown key (did you mean `value`?)"), "{text}");
}

/// A definition's value of `key`, as JSON, as Ceilometer's `configurations` would hold
/// it after `validate_configurations` (none: the key is absent).
fn value_of(definition: &Definition, key: &str) -> Option<Json> {
    let attribute = |a: &Attribute| json!(a.text());
    let pairs = |pairs: &[(String, String)]| {
        (!pairs.is_empty()).then(|| Json::Object(pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect()))
    };
    Some(match key {
        "name" => json!(definition.name),
        "skip_sample_values" => json!(definition.skip_sample_values),
        "value_mapping" => {
            Json::Object(definition.value_mapping.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
        }
        "default_value" => definition.default_value.clone(),
        "metadata_mapping" => pairs(&definition.metadata_mapping).unwrap_or(json!({})),
        "preserve_mapped_metadata" => json!(definition.preserve_mapped_metadata),
        "metadata_fields" => {
            return (!definition.metadata_fields.is_empty())
                .then(|| json!(definition.metadata_fields.iter().map(Attribute::text).collect::<Vec<_>>()))
        }
        "response_entries_key" => return definition.response_entries_key.as_ref().map(attribute),
        "next_sample_url_attribute" => return definition.next_sample_url_attribute.as_ref().map(attribute),
        "user_id_attribute" => attribute(&definition.user_id_attribute),
        "resource_id_attribute" => attribute(&definition.resource_id_attribute),
        "project_id_attribute" => attribute(&definition.project_id_attribute),
        "headers" => return pairs(&definition.headers),
        "timeout" => json!(definition.timeout? as i64),
        "extra_metadata_fields" => {
            return (!definition.extra_metadata_fields.is_empty())
                .then(|| json!(definition.extra_metadata_fields.len()))
        }
        "response_handlers" => {
            json!(definition.response_handlers.iter().map(|h| format!("{h:?}").to_lowercase()).collect::<Vec<_>>())
        }
        other => panic!("no reading of `{other}`"),
    })
}

#[test]
fn required_keys_and_defaults_are_ceilometer_27_s() {
    let complete = "- name: m\n  sample_type: gauge\n  unit: u\n  value_attribute: v\n  endpoint_type: compute\n  url_path: servers\n";
    let table = include_str!("../../tests/data/ceilometer-27-definition-keys.tsv");
    let rows = table.lines().filter(|l| !l.starts_with('#')).skip(1).map(|l| l.split('\t').collect::<Vec<_>>());
    let defaults = parse(complete).unwrap();
    let mut checked = 0;
    for row in rows {
        let (key, required, default, line) = (row[0], row[1] == "yes", row[2], row[3]);
        if required {
            let without: String = complete
                .lines()
                .filter(|l| !l.trim_start().trim_start_matches("- ").starts_with(&format!("{key}:")))
                .map(|l| format!("{l}\n"))
                .collect();
            let without = if key == "name" { without.replacen("  sample_type", "- sample_type", 1) } else { without };
            let found = problems(&without);
            assert!(
                found.iter().any(|p| p.starts_with(&format!("{key}: is required"))),
                "{key} (line {line}): {found:?}"
            );
        } else if key == "extra_metadata_fields_cache_seconds" {
            // Checked through an extra field, which inherits it (extra_metadata_inherits_and_checks).
            let yaml = format!("{complete}  extra_metadata_fields:\n    - {{name: p, endpoint_type: identity, url_path: x, value: name}}\n");
            assert_eq!(
                json!(parse(&yaml).unwrap().extra_metadata_fields[0].cache_seconds),
                serde_json::from_str::<Json>(default).unwrap(),
                "{key} (line {line})"
            );
        } else if key == "extra_metadata_fields_skip" {
            let yaml = format!("{complete}  extra_metadata_fields:\n    - {{name: p, endpoint_type: identity, url_path: x, value: name}}\n");
            assert_eq!(
                json!(parse(&yaml).unwrap().extra_metadata_fields[0].skip),
                serde_json::from_str::<Json>(default).unwrap(),
                "{key} (line {line})"
            );
        } else {
            let expected = (default != "none").then(|| serde_json::from_str::<Json>(default).unwrap());
            assert_eq!(value_of(&defaults, key), expected, "{key} (line {line})");
        }
        checked += 1;
    }
    assert_eq!(checked, 23);
}
