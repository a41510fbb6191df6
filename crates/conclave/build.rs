// The web client is embedded in the binary (src/http.rs, rust-embed). rust-embed's
// include_bytes! tracks the files that existed when the crate was compiled, but not files
// added since; this makes cargo rebuild the crate when anything under web/ changes.
fn main() {
    println!("cargo:rerun-if-changed=../../web");
}
