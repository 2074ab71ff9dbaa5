//! Writes the CRD YAML generated from the Rust types: with a directory,
//! every CRD file into it (`crdgen crds`); without, the LoadTest CRD to
//! stdout. `crds/` holds the output, and a test fails when the two differ.

fn main() -> std::io::Result<()> {
    match std::env::args_os().nth(1) {
        Some(dir) => {
            for (name, text) in barrage_operator::crdgen::files() {
                std::fs::write(std::path::Path::new(&dir).join(name), text)?;
            }
            Ok(())
        }
        None => {
            print!("{}", barrage_operator::crdgen::render());
            Ok(())
        }
    }
}
