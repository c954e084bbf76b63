use super::*;

fn bar(birth: f64, death: f64) -> Bar {
    Bar { birth, death }
}
