//! `volume.provider.pool.capacity.{total,free,provisioned,virtual_free,allocated}`:
//! gauges, GiB, on the `volume_pools` discoverer's pools, computed from each pool's
//! capabilities as Ceilometer's `VolumeProviderPoolCapacity*` pollsters do
//! (`ceilometer/volume/cinder.py`): `total` and `free` where the capacity is not null,
//! `provisioned` and `virtual_free` where the provisioned capacity is not zero
//! (`virtual_free` = `max_over_subscription_ratio` (with thin provisioning, else 1) ×
//! (total − ⌊reserved_percentage / 100 × total⌋) − provisioned), `allocated` always.
//! Where Ceilometer would publish a capacity that is not a number (a driver's
//! `"infinite"`), there is no sample.
use pollen_sdk::pollster::*;
use serde_json::Value as Json;

const TOTAL: u32 = 0;
const FREE: u32 = 1;
const PROVISIONED: u32 = 2;
const VIRTUAL_FREE: u32 = 3;
const ALLOCATED: u32 = 4;

struct VolumePoolCapacity;

impl Pollster for VolumePoolCapacity {
    fn describe() -> Vec<Meter> {
        ["total", "free", "provisioned", "virtual_free", "allocated"]
            .iter()
            .map(|kind| {
                Meter::gauge(&format!("volume.provider.pool.capacity.{kind}"), "GiB").discovered_by("volume_pools")
            })
            .collect()
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        let mut samples = Vec::new();
        for (index, pool) in resources.iter().enumerate() {
            let Some(caps) = pool.data.as_deref().and_then(|d| serde_json::from_str::<Json>(d).ok()) else { continue };
            samples.extend(capacities(&caps).into_iter().map(|(meter, volume)| Sample::new(meter, index, volume)));
        }
        Ok(samples)
    }
}

/// The samples (meter index, volume) of a pool with these capabilities.
fn capacities(caps: &Json) -> Vec<(u32, f64)> {
    let number = |key: &str| caps.get(key).and_then(Json::as_f64);
    let (total, provisioned) = (number("total_capacity_gb"), number("provisioned_capacity_gb"));
    let mut found = vec![(TOTAL, total), (FREE, number("free_capacity_gb"))];
    if let Some(provisioned) = provisioned.filter(|p| *p != 0.0) {
        let ratio = match caps.get("thin_provisioning_support").and_then(Json::as_bool) {
            Some(true) => ratio_of(caps.get("max_over_subscription_ratio")),
            _ => 1.0,
        };
        let virtual_free = total
            .zip(number("reserved_percentage"))
            .map(|(total, reserved)| ratio * (total - (reserved / 100.0 * total).floor()) - provisioned);
        found.extend([(PROVISIONED, Some(provisioned)), (VIRTUAL_FREE, virtual_free)]);
    }
    found.push((ALLOCATED, number("allocated_capacity_gb")));
    found.into_iter().filter_map(|(meter, volume)| Some((meter, volume?))).collect()
}

/// `float(caps.get('max_over_subscription_ratio', 1.0))`: a number or its text.
fn ratio_of(value: Option<&Json>) -> f64 {
    match value {
        Some(Json::Number(n)) => n.as_f64().unwrap_or(1.0),
        Some(Json::String(text)) => text.trim().parse().unwrap_or(1.0),
        _ => 1.0,
    }
}

export_pollster!(VolumePoolCapacity);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Ceilometer's arithmetic (`ceilometer/volume/cinder.py:218-251`) on a thin pool
    /// (ratio given as text, as drivers report it) and a thick one.
    #[test]
    fn capacities_are_computed_as_ceilometer_does() {
        let thin = json!({"total_capacity_gb": 100.0, "free_capacity_gb": 40.5, "provisioned_capacity_gb": 30,
            "allocated_capacity_gb": 25, "reserved_percentage": 15, "thin_provisioning_support": true,
            "max_over_subscription_ratio": "2.0"});
        // reserved = floor(0.15 * 100) = 15; 2.0 * (100 - 15) - 30 = 140
        assert_eq!(
            capacities(&thin),
            [(TOTAL, 100.0), (FREE, 40.5), (PROVISIONED, 30.0), (VIRTUAL_FREE, 140.0), (ALLOCATED, 25.0)]
        );
        let thick = json!({"total_capacity_gb": 10, "free_capacity_gb": 10, "provisioned_capacity_gb": 3,
            "allocated_capacity_gb": 3, "reserved_percentage": 0, "thin_provisioning_support": false});
        assert_eq!(capacities(&thick)[3], (VIRTUAL_FREE, 7.0));
        // The fake driver's pool: infinite sizes, nothing provisioned: `allocated` alone.
        let fake = json!({"total_capacity_gb": "infinite", "free_capacity_gb": "infinite", "provisioned_capacity_gb": 0,
            "allocated_capacity_gb": 0, "reserved_percentage": 100});
        assert_eq!(capacities(&fake), [(ALLOCATED, 0.0)]);
    }
}
