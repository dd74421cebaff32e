//! XML responses as Python's `xmltodict.parse` gives them to Ceilometer: the root
//! element as the one key; attributes as `@name`; an element's text alone as a
//! string, or `#text` beside attributes and children; repeated children as a list.

use serde_json::{Map, Value as Json};

/// The JSON of an XML document, or why it is not XML.
pub(crate) fn to_json(text: &str) -> Result<Json, String> {
    let options = roxmltree::ParsingOptions { allow_dtd: false, nodes_limit: 1_000_000 };
    let document = roxmltree::Document::parse_with_options(text, options).map_err(|e| e.to_string())?;
    let root = document.root_element();
    let mut top = Map::new();
    top.insert(name(root), element(root));
    Ok(Json::Object(top))
}

fn name(node: roxmltree::Node<'_, '_>) -> String {
    match node.tag_name().namespace().and_then(|ns| node.lookup_prefix(ns)) {
        Some(prefix) if !prefix.is_empty() => format!("{prefix}:{}", node.tag_name().name()),
        _ => node.tag_name().name().to_string(),
    }
}

fn element(node: roxmltree::Node<'_, '_>) -> Json {
    let mut map = Map::new();
    for attribute in node.attributes() {
        map.insert(format!("@{}", attribute.name()), Json::String(attribute.value().to_string()));
    }
    let mut text = String::new();
    for child in node.children() {
        if child.is_element() {
            let key = name(child);
            let value = element(child);
            match map.get_mut(&key) {
                Some(Json::Array(items)) => items.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Json::Array(vec![first, value]);
                }
                None => {
                    map.insert(key, value);
                }
            }
        } else if let Some(part) = child.text() {
            text.push_str(part);
        }
    }
    let text = text.trim();
    match (map.is_empty(), text.is_empty()) {
        (true, true) => Json::Null,
        (true, false) => Json::String(text.to_string()),
        (false, false) => {
            map.insert("#text".into(), Json::String(text.to_string()));
            Json::Object(map)
        }
        (false, true) => Json::Object(map),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_read_as_xmltodict_reads_them() {
        let json = to_json(r#"<usage><entry id="a"><ops>3</ops></entry><entry id="b"><ops>4</ops></entry><note lang="en">hi</note><empty/></usage>"#).unwrap();
        assert_eq!(
            json,
            json!({"usage": {
                "entry": [{"@id": "a", "ops": "3"}, {"@id": "b", "ops": "4"}],
                "note": {"@lang": "en", "#text": "hi"},
                "empty": null
            }})
        );
        assert!(to_json("<a><b></a>").is_err());
        assert!(to_json("<!DOCTYPE x [<!ENTITY e 'e'>]><x>&e;</x>").is_err());
    }
}
