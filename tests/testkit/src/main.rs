//! `pollen-testnode DOMAINS PATH`: writes a libvirt test-driver node file with DOMAINS
//! domains (see `pollen_testkit::NodeSpec`), for `test:///abs/PATH`.
//!
//! `pollen-testnode qemu PREFIX INDEX DIR`: creates the disk of a real QEMU domain in
//! DIR and prints its XML (see `pollen_testkit::QemuDomain`), for `virsh create`.
use pollen_testkit::{NodeSpec, QemuDomain};
use std::path::Path;

const USAGE: &str = "usage: pollen-testnode DOMAINS PATH          (e.g. pollen-testnode 1000 /tmp/node-1000.xml)
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
        [domains, path] => match domains.parse() {
            Ok(domains) => {
                NodeSpec::with_domains(domains).write(Path::new(path)).map_err(|e| format!("cannot write {path}: {e}"))
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
