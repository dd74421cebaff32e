//! Blocks in WASI instead of returning: `std::thread::sleep` for an hour, again and
//! again, in `poll` or (with the parameter `in: describe`) already in `describe`, when
//! the host loads it. Epoch interruption alone never stops a call blocked in the host;
//! the host's WASI must not let it block. A plugin that sleeps in a loop then only
//! spins, and its deadline stops it.
use pollen_sdk::pollster::*;
use std::time::Duration;

struct Sleeper;

fn sleep_for_ever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

impl Pollster for Sleeper {
    fn describe() -> Vec<Meter> {
        if config::get("in").as_deref() == Some("describe") {
            sleep_for_ever();
        }
        vec![Meter::gauge("test.sleep", "1").discovered_by("local_instances")]
    }

    fn poll(_resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        sleep_for_ever();
    }
}

export_pollster!(Sleeper);
