use super::*;
use crate::Definition;
use serde_json::json;

fn definition(yaml: &str) -> Definition {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    let value = serde_json::to_value(value).unwrap();
    Definition::parse(&value[0]).unwrap_or_else(|p| panic!("{p:?}")).0
}

const BASE: &str = "- name: m\n  sample_type: gauge\n  unit: u\n  endpoint_type: compute\n  url_path: servers\n";

#[test]
fn entries_come_from_the_key_the_first_key_or_the_list() {
    let key = Attribute::parse("servers").unwrap();
    assert_eq!(entries(json!({"servers": [1, 2], "links": []}), Some(&key)).unwrap(), [json!(1), json!(2)]);
    assert_eq!(entries(json!([1, 2]), Some(&key)).unwrap(), [json!(1), json!(2)]);
    assert_eq!(entries(json!({}), None).unwrap(), Vec::<Json>::new());
    assert_eq!(entries(json!({"project": {"id": "p"}}), None).unwrap(), [json!({"id": "p"})]);
    let nested = Attribute::parse("data.items").unwrap();
    assert_eq!(entries(json!({"data": {"items": [3]}}), Some(&nested)).unwrap(), [json!(3)]);
    assert!(entries(json!({"other": []}), Some(&key)).is_err());
}

#[test]
fn next_urls_and_joins_follow_urljoin() {
    let link = Attribute::parse("links.next").unwrap();
    assert_eq!(
        next_url(&json!({"links": {"next": "http://k/v3/p?m=1"}}), Some(&link)).unwrap().as_deref(),
        Some("http://k/v3/p?m=1")
    );
    assert_eq!(next_url(&json!({"links": {"next": null}}), Some(&link)).unwrap(), None);
    assert_eq!(next_url(&json!({"links": {}}), Some(&link)).unwrap(), None);
    assert_eq!(next_url(&json!({}), None).unwrap(), None);
    assert_eq!(join("http://g:9292", "v2/images").unwrap(), "http://g:9292/v2/images");
    assert_eq!(join("http://g:9292/", "/v2/images?limit=2").unwrap(), "http://g:9292/v2/images?limit=2");
    assert_eq!(join("http://k:5000/v3", "/v3/projects").unwrap(), "http://k:5000/v3/projects");
    assert_eq!(join("http://c:8776/v3/p1", "volumes/detail").unwrap(), "http://c:8776/v3/p1/volumes/detail");
    assert_eq!(join("http://c:8776/v3/p1", "http://o/x").unwrap(), "http://o/x");
}

#[test]
fn an_entry_gives_ids_value_and_metadata() {
    let d = definition(&format!(
        "{BASE}  value_attribute: status\n  project_id_attribute: tenant_id\n  metadata_fields: [name, 'flavor.vcpus', \"tags | ','.join(value)\"]\n  metadata_mapping: {{name: display_name, 'flavor.vcpus': vcpus}}\n  value_mapping: {{ACTIVE: '1'}}\n  default_value: 0\n"
    ));
    let entry = json!({"id": "s1", "user_id": "u1", "tenant_id": "p1", "status": "ACTIVE", "name": "vm", "flavor": {"vcpus": 2}, "tags": ["a", "b"]});
    let extracted = extract(&d, &entry).unwrap().unwrap();
    assert_eq!(extracted.resource_id, "s1");
    assert_eq!(extracted.user_id.as_deref(), Some("u1"));
    assert_eq!(extracted.project_id.as_deref(), Some("p1"));
    assert_eq!(extracted.values, [(None, 1.0)]);
    assert_eq!(
        Json::Object(extracted.metadata.clone()),
        json!({"name": "vm", "display_name": "vm", "flavor.vcpus": 2, "vcpus": 2, "tags | ','.join(value)": "a,b"})
    );
    let stopped = json!({"id": "s2", "status": "SHUTOFF", "name": "x", "flavor": {"vcpus": 1}, "tags": []});
    let extracted = extract(&d, &stopped).unwrap().unwrap();
    assert_eq!(extracted.values, [(None, 0.0)]);
    assert_eq!(extracted.user_id, None);
    let sample = request_sample(&stopped, &extracted);
    assert_eq!(sample["value"], json!("SHUTOFF"));
    assert_eq!(sample["metadata"]["display_name"], json!("x"));
}

#[test]
fn skips_mappings_and_what_is_not_a_number() {
    let d = definition(&format!("{BASE}  value_attribute: size\n  skip_sample_values: [0, 'None']\n  metadata_mapping: {{name: display_name}}\n  preserve_mapped_metadata: false\n  metadata_fields: [name]\n"));
    assert_eq!(extract(&d, &json!({"id": "a", "size": 0, "name": "n"})).unwrap(), None);
    let kept = extract(&d, &json!({"id": "a", "size": 5, "name": "n"})).unwrap().unwrap();
    assert_eq!(Json::Object(kept.metadata), json!({"display_name": "n"}));
    assert_eq!(extract(&d, &json!({"id": "a", "size": "7.5", "name": "n"})).unwrap().unwrap().values, [(None, 7.5)]);
    assert_eq!(
        extract(&d, &json!({"id": "a", "size": "big", "name": "n"})).unwrap_err(),
        ExtractError::NotANumber("big".into())
    );
    assert_eq!(extract(&d, &json!({"size": 1, "name": "n"})).unwrap_err(), ExtractError::NoResourceId);
    let missing = extract(&d, &json!({"id": "a", "name": "n"})).unwrap_err();
    assert_eq!(missing.to_string(), "`size`: no key 'size' (at character 1)");
    // YAML's numeric keys arrive as text, and still map numbers.
    let d = definition(&format!("{BASE}  value_attribute: state\n  value_mapping: {{1: 10, 2: 20}}\n"));
    assert_eq!(extract(&d, &json!({"id": "a", "state": 2})).unwrap().unwrap().values, [(None, 20.0)]);
    let d = definition(&format!("{BASE}  value_attribute: enabled\n  value_mapping: {{true: 1, false: 0}}\n"));
    assert_eq!(extract(&d, &json!({"id": "a", "enabled": false})).unwrap().unwrap().values, [(None, 0.0)]);
}

#[test]
fn multi_metric_entries_give_one_sample_per_listed_object() {
    let d = definition(
        "- name: dynamic.radosgw.api.request.{category}\n  sample_type: gauge\n  unit: request\n  value_attribute: '[categories].ops'\n  url_path: http://rgw/admin/usage\n  resource_id_attribute: \"user | value.split('$')[0]\"\n  skip_sample_values: [list_bucket]\n",
    );
    let entry = json!({"user": "p1$p1", "categories": [
        {"category": "create_bucket", "ops": 2}, {"category": "get_obj", "ops": 46}, {"category": "list_bucket", "ops": 8}
    ]});
    let extracted = extract(&d, &entry).unwrap().unwrap();
    assert_eq!(extracted.resource_id, "p1");
    assert_eq!(extracted.values, [(Some("create_bucket".into()), 2.0), (Some("get_obj".into()), 46.0)]);
    assert_eq!(d.sub_meter("get_obj").as_deref(), Some("dynamic.radosgw.api.request.get_obj"));
    assert!(matches!(extract(&d, &json!({"user": "u", "categories": 3})).unwrap_err(), ExtractError::NotAList(_)));
}

#[test]
fn bodies_are_read_by_the_handlers_in_turn() {
    assert_eq!(parse_body(b"[1]", &[Handler::Json]).unwrap(), json!([1]));
    assert_eq!(parse_body(b"<a><b>1</b></a>", &[Handler::Json, Handler::Xml]).unwrap(), json!({"a": {"b": "1"}}));
    assert_eq!(parse_body(b"load 0.5", &[Handler::Json, Handler::Text]).unwrap(), json!([{"out": "load 0.5"}]));
    let error = parse_body(b"<a>", &[Handler::Json, Handler::Xml]).unwrap_err();
    assert!(error.to_string().starts_with("the response cannot be read: json: "), "{error}");
}

#[test]
fn enrichment_skips_match_recursively() {
    let sample = json!({"id": "a", "metadata": {"status": "ERROR", "x": 1}});
    assert!(enrichment_skipped(&[json!({"metadata": {"status": "ERROR"}})], &sample));
    assert!(!enrichment_skipped(&[json!({"metadata": {"status": "ACTIVE"}})], &sample));
    assert!(!enrichment_skipped(&[json!({})], &sample));
}
