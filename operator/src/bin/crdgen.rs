//! Prints the CRD YAML generated from the Rust types; `crds/` holds its
//! output, and a test fails when the two differ.

fn main() {
    print!("{}", barrage_operator::crdgen::render());
}
