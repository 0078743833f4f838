//! What this build is: the package version and the commit it was built from (a leaf, so
//! that `http`, `cli` and `lib` can all name it without importing one another).

/// Version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git commit of this build (or "unknown").
pub const COMMIT: &str = env!("POSTA_COMMIT");
