//! The pressure manager: a budget, usage readings, levels Normal < Warning (80 %)
//! < Critical (90 %) < Emergency (95 %) with hysteresis, a registry of reclaim
//! callbacks run in priority order, emergency release, admission control and a
//! bounded event history. Usage sources are plain functions, so this layer needs
//! nothing above it; the allocators report their mappings to [`signal`].

mod level;
mod manager;
mod monitor;
pub mod signal;

pub use level::{PressureLevel, Thresholds};
pub use manager::{
    CallbackHandle, CallbackRun, Clock, Consumer, PressureEvent, PressureManager,
    PressureManagerBuilder, PressureStats, ReclaimRequest, SystemClock, UsageSource,
};
pub use monitor::MonitorInfo;
