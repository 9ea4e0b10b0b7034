//! Driver containers: profile selection, image rules, the exact container spec, restart-loop
//! rules (all pure), and twin files.

pub mod bridge;
pub mod cleanup;
pub mod image;
pub mod launch;
pub mod logs;
pub mod profile;
pub mod spec;
pub mod twin_file;

pub use profile::HostPlatform;
pub use spec::{
    DriverSpec, LaunchContext, TwinOutcome, TwinPlan, ZenohEnv, container_name, plan_twins,
};
