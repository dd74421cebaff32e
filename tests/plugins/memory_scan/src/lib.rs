//! Searches its own linear memory, all of it, for what it must never have held. Each
//! `poll` (a pollster with no discoverer: once per cycle) it finds the endpoint of the
//! OpenStack catalog's `service` type and fetches `<endpoint>/needles` (a catalog
//! endpoint: the host adds the token), or fetches its `url` parameter instead (with
//! `grants: [http]`: the host adds a credential it is granted); the first line of the
//! answer is one more needle.
//! Then it counts the occurrences of each of `needles` (its parameter), then of the
//! fetched one, in every byte of its memory, freed allocations included, and reports
//! them as `test.memory.found` on `needle-<i>`, and the bytes searched as
//! `test.memory.bytes` on `memory`. Needles are hex-encoded and XORed with 0x5A, and
//! compared byte by byte without being decoded, so that the plain text of a needle
//! (the agent's password, its token) is never written into the memory searched.
use pollen_sdk::openstack;
use pollen_sdk::pollster::*;

/// What each needle's bytes are XORed with.
const MASK: u8 = 0x5A;

struct MemoryScan;

impl Pollster for MemoryScan {
    fn describe() -> Vec<Meter> {
        vec![Meter::gauge("test.memory.found", "1"), Meter::gauge("test.memory.bytes", "B")]
    }

    fn poll(_resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        let url = match config::get("url") {
            Some(url) => url,
            None => {
                let service =
                    config::get("service").ok_or_else(|| Error::BadConfig("`service` or `url` is missing".into()))?;
                let endpoint = openstack::endpoint(&service)
                    .map_err(|e| Error::Host(e.to_string()))?
                    .ok_or_else(|| Error::Other(format!("no `{service}` endpoint in the catalog")))?;
                let _scope = openstack::scope().map_err(|e| Error::Host(e.to_string()))?;
                format!("{endpoint}/needles")
            }
        };
        let answer = pollen_sdk::http::get(&url).send()?.ok()?;
        let mut needles: Vec<Vec<u8>> =
            config::get("needles").unwrap_or_default().split(',').filter(|n| !n.is_empty()).map(unhex).collect();
        let fetched = String::from_utf8_lossy(&answer.body);
        needles.push(unhex(fetched.lines().next().unwrap_or_default()));
        drop(answer);
        let memory = memory_bytes();
        let scanned = name("memory").ok_or_else(|| Error::Other("resource refused".into()))?;
        let mut samples = vec![Sample::new(1, scanned as usize, memory as f64)];
        for (i, needle) in needles.iter().enumerate() {
            let at = name(&format!("needle-{i}")).ok_or_else(|| Error::Other("resource refused".into()))?;
            samples.push(Sample::new(0, at as usize, occurrences(needle, memory) as f64));
        }
        Ok(samples)
    }
}

fn name(id: &str) -> Option<u32> {
    name_resource(&DiscoveredResource {
        id: id.into(),
        name: id.into(),
        user_id: None,
        project_id: None,
        metadata: Vec::new(),
        data: None,
    })
}

/// The bytes of hex text `text` (still masked).
fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2).filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

/// The size of linear memory 0, in bytes.
fn memory_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size::<0>() * 65536
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

/// How many times `masked` (unmasked, byte by byte) occurs in memory `[1, size)`.
fn occurrences(masked: &[u8], size: usize) -> usize {
    let Some(&first) = masked.first() else { return 0 };
    let byte = |at: usize| -> u8 {
        // SAFETY: every address below the memory's size is a readable byte of linear
        // memory in WebAssembly; the read is volatile so that none is skipped.
        unsafe { core::ptr::read_volatile(at as *const u8) }
    };
    let mut found = 0;
    let mut at = 1;
    while at + masked.len() <= size {
        if byte(at) ^ MASK == first && (1..masked.len()).all(|j| byte(at + j) ^ MASK == masked[j]) {
            found += 1;
        }
        at += 1;
    }
    found
}

export_pollster!(MemoryScan);
