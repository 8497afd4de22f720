//! `mirror-desk`: what Mirror's desktop apps share, so that each app keeps only its own views.
//!
//! - [`connections`]: the servers an app remembers (address, certificate fingerprint and the
//!   name of the environment variable holding the token, never the token).

#![warn(missing_docs)]

pub mod connections;

pub use connections::{Profile, REMEMBERED_MAX, Remembered, default_path};
