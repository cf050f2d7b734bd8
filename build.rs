//! The store's migrations are embedded at compile time (`sqlx::migrate!`): a changed or new
//! migration must rebuild the crate even when no Rust file changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
