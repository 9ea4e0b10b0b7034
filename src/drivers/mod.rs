//! Drivers, the first role of the container runtime: twin → container spec (profile selection,
//! the exact spec, env), twin files, the driver policy (alerts, `driverlog`) on top of
//! `crate::containers`, the role's plans on the runtime (`runtime`) and what it answers the
//! daemon's supervisor (`supervised`).

pub mod bridge;
pub mod camera;
pub mod card;
pub mod compose;
pub mod conflict;
mod discovery;
pub mod jetson_power;
pub mod logs;
pub mod meta_restart;
mod navigation;
pub mod params;
pub mod policy;
pub mod profile;
pub mod runtime;
pub mod settings;
pub mod spec;
mod supervised;
pub mod tokens;
pub mod words;

pub use profile::HostPlatform;
pub use spec::{DriverSpec, LaunchContext, TwinOutcome, TwinPlan, container_name, plan_twins};

// Image tag rules are the runtime's (every role's images follow them).
pub use crate::containers::image;
pub use crate::containers::launch;
