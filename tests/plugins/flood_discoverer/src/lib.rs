//! Discoverer `flood`: reports `count` (default 1,000,000) resources in one call,
//! each with an id of `id_bytes` bytes (default 40) and `metadata_bytes` of metadata
//! (default none). The host must bound what it keeps of them.
use pollen_sdk::discoverer::*;

struct FloodDiscoverer;

fn param(name: &str, default: usize) -> usize {
    config::get(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Discoverer for FloodDiscoverer {
    fn name() -> String {
        "flood".into()
    }

    fn discover(_param: Option<String>) -> Result<(), Error> {
        let (count, id_bytes, metadata_bytes) =
            (param("count", 1_000_000), param("id_bytes", 40), param("metadata_bytes", 0));
        let mut id = "0".repeat(id_bytes.max(20));
        let metadata =
            if metadata_bytes > 0 { vec![entry("blob", "m".repeat(metadata_bytes).as_str())] } else { vec![] };
        for n in 0..count {
            id.replace_range(..20, &format!("{n:020}"));
            report(&Discovery::Changed(DiscoveredResource {
                id: id.clone(),
                name: "flooded".into(),
                user_id: None,
                project_id: None,
                metadata: metadata.clone(),
                data: None,
            }));
        }
        Ok(())
    }
}

export_discoverer!(FloodDiscoverer);
