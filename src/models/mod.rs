//! The ML model cache under `<config dir>/models/` (reference §7), which the worker container
//! mounts at `/app/models` and the SDK's `cw.models.load` reads: which models the workers need
//! (`discover`), the cache's files in their exact formats (`store`), streaming SHA-256
//! (`hash`), and downloads that resume, hash while they stream and refuse what cannot fit
//! (`download`). The worker role (issue 10) drives it.

pub mod discover;
pub mod download;
pub mod ensure;
pub mod hash;
pub mod store;
