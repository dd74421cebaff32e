//! `pollen-testnode DOMAINS PATH`: writes a libvirt test-driver node file with DOMAINS
//! domains (see `pollen_testkit::NodeSpec`), for `test:///abs/PATH`.
use pollen_testkit::NodeSpec;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(domains), Some(path)) = (args.first().and_then(|d| d.parse().ok()), args.get(1)) else {
        eprintln!("usage: pollen-testnode DOMAINS PATH   (e.g. pollen-testnode 1000 /tmp/node-1000.xml)");
        std::process::exit(2);
    };
    if let Err(error) = NodeSpec::with_domains(domains).write(std::path::Path::new(path)) {
        eprintln!("pollen-testnode: cannot write {path}: {error}");
        std::process::exit(1);
    }
}
