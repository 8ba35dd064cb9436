//! Rebuild when a conformance case changes: the cases are embedded with
//! `include_dir!`, which cannot tell cargo what it read on stable Rust.

fn main() {
    println!("cargo::rerun-if-changed=../../plugins/conformance");
}
