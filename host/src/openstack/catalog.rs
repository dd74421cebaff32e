//! Keystone's service catalog: endpoints by service type, interface and region.

use crate::caps::http::Origin;
use serde_json::Value;

/// One endpoint of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The service's type, e.g. `image`, `volumev3`.
    pub service_type: String,
    /// `public`, `internal` or `admin`.
    pub interface: String,
    /// Its region, if the catalog says.
    pub region: Option<String>,
    /// Its URL, e.g. `http://glance:9292`.
    pub url: String,
}

/// The catalog that came with a token.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    endpoints: Vec<Endpoint>,
}

impl Catalog {
    /// The catalog of a v3 token body (`token.catalog`).
    pub fn from_token(token: &Value) -> Result<Self, String> {
        let Some(services) = token["catalog"].as_array() else {
            return Err("the token has no catalog (is the user scoped to a project?)".into());
        };
        let mut endpoints = Vec::new();
        for service in services {
            let service_type = service["type"].as_str().unwrap_or_default();
            for endpoint in service["endpoints"].as_array().into_iter().flatten() {
                let (Some(interface), Some(url)) = (endpoint["interface"].as_str(), endpoint["url"].as_str()) else {
                    continue;
                };
                let region = endpoint["region_id"].as_str().or(endpoint["region"].as_str()).map(str::to_string);
                endpoints.push(Endpoint {
                    service_type: service_type.to_string(),
                    interface: interface.to_string(),
                    region,
                    url: url.to_string(),
                });
            }
        }
        Ok(Self { endpoints })
    }

    /// How many services it lists.
    pub fn len(&self) -> usize {
        let mut types: Vec<&str> = self.endpoints.iter().map(|e| e.service_type.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        types.len()
    }

    /// Whether it lists nothing.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The endpoints of `service_type` on `interface`, in `region` if one is given
    /// (as Ceilometer's clients filter them).
    pub fn endpoints(&self, service_type: &str, interface: &str, region: Option<&str>) -> Vec<Endpoint> {
        self.endpoints
            .iter()
            .filter(|e| e.service_type == service_type && e.interface == interface)
            .filter(|e| region.is_none_or(|r| e.region.as_deref() == Some(r)))
            .cloned()
            .collect()
    }

    /// Whether `origin` is the origin of one of its endpoints (where the token goes).
    pub fn serves(&self, origin: &Origin) -> bool {
        self.endpoints.iter().any(|e| url_origin(&e.url).as_ref() == Some(origin))
    }
}

/// The origin of an endpoint URL.
pub fn url_origin(url: &str) -> Option<Origin> {
    Origin::of(&url.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_are_filtered_by_type_interface_and_region() {
        let token = json!({"catalog": [
            {"type": "image", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "http://glance:9292"},
                {"interface": "internal", "region_id": "RegionOne", "url": "http://glance-int:9292"},
                {"interface": "public", "region_id": "RegionTwo", "url": "http://glance2:9292"}]},
            {"type": "volumev3", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "http://cinder:8776/v3/abc"}]}]});
        let catalog = Catalog::from_token(&token).unwrap();
        assert_eq!(catalog.len(), 2);
        let urls = |e: Vec<Endpoint>| e.into_iter().map(|e| e.url).collect::<Vec<_>>();
        assert_eq!(urls(catalog.endpoints("image", "public", Some("RegionOne"))), ["http://glance:9292"]);
        assert_eq!(urls(catalog.endpoints("image", "public", None)), ["http://glance:9292", "http://glance2:9292"]);
        assert_eq!(urls(catalog.endpoints("image", "internal", None)), ["http://glance-int:9292"]);
        assert!(catalog.endpoints("network", "public", None).is_empty());
        assert!(catalog.serves(&url_origin("http://cinder:8776/v3/other").unwrap()));
        assert!(!catalog.serves(&url_origin("http://cinder:8777/").unwrap()));
        assert!(Catalog::from_token(&json!({})).is_err());
    }
}
