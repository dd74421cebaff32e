//! `images`: Glance's images, as Ceilometer's `images` discovery
//! (`ceilometer/image/discovery.py`: `image.images()` of the image endpoint on the
//! agent's interface and region): `GET /v2/images`, followed page by page to the end.
//! Each image is reported with what Ceilometer's `image.size` samples carry
//! (`ceilometer/image/glance.py`, `_Base.extract_image_metadata` and
//! `ImageSizePollster`): project the image's `owner`, no user, the thirteen metadata
//! keys under openstacksdk's attribute names (`openstack/image/v2/image.py`: `protected`
//! is read as `is_protected`, and `tags` is `[]` when absent), and its size for the
//! `image_size` pollster.
//!
//! Needs `grants: [openstack]`. A cloud without an image service is skipped with one
//! warning.
use pollen_sdk::discoverer::*;
use serde_json::Value as Json;

/// Ceilometer's metadata keys, and the key of Glance's answer each is read from.
const METADATA: [(&str, &str); 13] = [
    ("status", "status"),
    ("visibility", "visibility"),
    ("name", "name"),
    ("container_format", "container_format"),
    ("created_at", "created_at"),
    ("disk_format", "disk_format"),
    ("updated_at", "updated_at"),
    ("min_disk", "min_disk"),
    ("is_protected", "protected"),
    ("checksum", "checksum"),
    ("min_ram", "min_ram"),
    ("tags", "tags"),
    ("virtual_size", "virtual_size"),
];

struct GlanceImages;

impl Discoverer for GlanceImages {
    fn name() -> String {
        "images".into()
    }

    fn discover(_param: Option<String>) -> Result<(), Error> {
        discover_listing("image", |glance| format!("{glance}/v2/images?limit=1000"), "images", &[], resource_of)
    }
}

/// An image as Ceilometer's `image.size` sees it.
fn resource_of(id: &str, image: &Json) -> DiscoveredResource {
    let metadata = METADATA
        .iter()
        .map(|(key, from)| match (image.get(*from), *key) {
            (None, "tags") => entry(key, Value::from(&serde_json::json!([]))),
            (None, _) => entry(key, Value::Null),
            (Some(value), _) => entry(key, Value::from(value)),
        })
        .collect();
    DiscoveredResource {
        id: id.to_string(),
        name: image["name"].as_str().filter(|n| !n.is_empty()).unwrap_or(id).to_string(),
        user_id: None,
        project_id: image["owner"].as_str().map(str::to_string),
        metadata,
        data: Some(image["size"].to_string()),
    }
}

export_discoverer!(GlanceImages);
