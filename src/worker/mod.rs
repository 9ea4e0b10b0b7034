//! The ML worker role: workflow files synced from the cloud (`sync`), the worker container's
//! spec (`spec`) and settings, its health and restart accounting (`health`), the hot-reload
//! rule (`reload`; the watch on `workers/` is the crate's `watch`), the role on the
//! container runtime (`runtime`) and what it answers the daemon's supervisor (`supervised`).

pub mod cards;
pub mod health;
pub mod policy;
pub mod prep;
pub mod reload;
pub mod runtime;
pub mod settings;
pub mod spec;
pub mod status;
mod supervised;
pub mod sync;
