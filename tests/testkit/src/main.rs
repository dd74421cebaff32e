//! `pollen-testnode DOMAINS PATH [--running]`: writes a libvirt test-driver node file
//! with DOMAINS domains (see `pollen_testkit::NodeSpec`; one in ten shut off, or none
//! with `--running`, as the compute bench's nodes), for `test:///abs/PATH`.
//!
//! `pollen-testnode qemu PREFIX INDEX DIR`: creates the disk of a real QEMU domain in
//! DIR and prints its XML (see `pollen_testkit::QemuDomain`), for `virsh create`.
use pollen_testkit::{NodeSpec, QemuDomain};
use std::path::Path;

const USAGE: &str = "usage: pollen-testnode DOMAINS PATH [--running]  (e.g. pollen-testnode 1000 /tmp/node-1000.xml)
       pollen-testnode qemu PREFIX INDEX DIR   (prints a QEMU domain's XML; creates its disk in DIR)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["qemu", prefix, index, dir] => match index.parse() {
            Ok(index) => {
                let domain = QemuDomain::new(prefix, index, Path::new(dir));
                domain
                    .prepare()
                    .map(|()| print!("{}", domain.to_xml()))
                    .map_err(|e| format!("cannot create the disk: {e}"))
            }
            Err(_) => Err(format!("INDEX must be a number, not `{index}`\n{USAGE}")),
        },
        [domains, path, rest @ ..] if rest.is_empty() || rest == ["--running"] => match domains.parse() {
            Ok(domains) => {
                let stopped_every = if rest.is_empty() { NodeSpec::default().stopped_every } else { 0 };
                let spec = NodeSpec { domains, stopped_every, ..NodeSpec::default() };
                spec.write(Path::new(path)).map_err(|e| format!("cannot write {path}: {e}"))
            }
            Err(_) => Err(USAGE.to_string()),
        },
        _ => Err(USAGE.to_string()),
    };
    if let Err(message) = result {
        eprintln!("pollen-testnode: {message}");
        std::process::exit(2);
    }
}
