//! A valid component of a world that is not one of Pollen's. The host must refuse it.
wit_bindgen::generate!({
    inline: "
        package test:other;
        world calculator {
            export add: func(a: u32, b: u32) -> u32;
        }
    ",
});

struct Calculator;

impl Guest for Calculator {
    fn add(a: u32, b: u32) -> u32 {
        a.wrapping_add(b)
    }
}

export!(Calculator);
