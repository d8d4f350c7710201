//! PLC mode: the registry and slice interface on the central side, over a PLC backend.
//!
//! This branch carries the pieces that talk to PlanetLab itself: the [`backend::PlcBackend`]
//! interface, its `plcapi` implementation over a remote PLCAPI, the 2008 import naming rules and
//! `plc import`. The registry, its storage and the `plc` subcommand are wired in with the rest
//! of PLC mode.

// Not yet reachable from `main` until the `plc` subcommand is wired in.
#![allow(dead_code)]

mod backend;
mod import;
mod names;
mod plcapi;
