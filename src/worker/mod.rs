//! The ML worker role (issue 10, in progress): workflow files synced from the cloud
//! (`sync`). The worker container, its readiness, hot reload and the `worker` CLI come next.

pub mod sync;
