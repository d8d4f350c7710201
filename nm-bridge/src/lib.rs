//! The bridge between a verified request and the thing that really makes slivers.
//!
//! This crate owns the [`SliverManager`] trait (create, start, stop, reset, destroy, list,
//! status), the NodeManager-shaped [`SliverRecord`] with NodeManager's rspec defaults, and two
//! backends: [`local`], the built-in default, where a sliver is a private home, its own Unix
//! account (on a root agent), and its initscript in its own session and cgroup with the rspec's
//! limits; and [`nodemanager`], which
//! drives a real PlanetLab NodeManager over its XML-RPC Unix socket with the caller-uid rules NM
//! enforces. Authentication happens before anything reaches this crate: callers hand it records
//! built from verified tickets and sliver names taken from verified credentials.
#![forbid(unsafe_code)]

mod error;
pub mod local;
mod manager;
pub mod nodemanager;
mod record;

pub use error::NmError;
pub use manager::{BoxFuture, SliverManager, SliverState, SliverStatus};
pub use record::{Allocation, DEFAULT_ALLOCATION, Rspec, RspecValue, SliverName, SliverRecord};
